import type { WeightFromConfig } from '../config/schema.js';
import type { LicenseInfo } from '../health/parse/license-info.js';
import type { Server } from '../model/server.js';

/**
 * HAProxy's agent-check reply (configuration.txt, "agent-check"): one line of words separated by
 * spaces, tabs or commas, in any order, case-insensitive:
 *   up | down | fail | stopped     operational state ("up" only counts if health checks agree)
 *   ready | drain | maint          administrative state
 *   N%                             weight relative to the server's initial weight
 *   maxconn:N                      the server's maxconn
 *   #text                          description, to the end of the line
 * What a reply does not mention, HAProxy leaves as it was, and only the agent reverts its own
 * drain/down; so what licgate says always names health, admin state and weight.
 */
export type AgentHealthWord = 'up' | 'down' | 'fail' | 'stopped';
export type AgentAdminWord = 'ready' | 'drain' | 'maint';

export interface AgentReply {
  health: AgentHealthWord | null;
  admin: AgentAdminWord | null;
  weightPercent: number | null;
  maxconn: number | null;
  comment: string;
}

export interface ParsedAgentLine extends AgentReply {
  /** Words HAProxy would not understand (it ignores them after a warning). */
  unknown: string[];
}

const HEALTH_WORDS: readonly string[] = ['up', 'down', 'fail', 'stopped'];
const ADMIN_WORDS: readonly string[] = ['ready', 'drain', 'maint'];
const MAX_COMMENT = 120;

/** The line licgate sends, "\n"-terminated (HAProxy ignores a reply without a line end). */
export function renderAgentReply(r: AgentReply): string {
  const words: string[] = [];
  if (r.health) words.push(r.health);
  if (r.admin) words.push(r.admin);
  if (r.weightPercent !== null) words.push(`${Math.max(0, Math.round(r.weightPercent))}%`);
  if (r.maxconn !== null) words.push(`maxconn:${r.maxconn}`);
  const comment = cleanComment(r.comment);
  if (comment) words.push(`#${comment}`);
  return words.join(' ') + '\n';
}

/** Parses one agent line the way HAProxy 2.6 does (last word of each kind wins). */
export function parseAgentLine(line: string): ParsedAgentLine {
  const out: ParsedAgentLine = { health: null, admin: null, weightPercent: null, maxconn: null, comment: '', unknown: [] };
  const end = line.search(/[\r\n]/);
  let rest = end < 0 ? line : line.slice(0, end);
  const hash = rest.indexOf('#');
  if (hash >= 0) {
    out.comment = rest.slice(hash + 1).trim();
    rest = rest.slice(0, hash);
  }
  for (const raw of rest.split(/[ \t,]+/)) {
    if (!raw) continue;
    const word = raw.toLowerCase();
    let m: RegExpExecArray | null;
    if (HEALTH_WORDS.includes(word)) out.health = word as AgentHealthWord;
    else if (ADMIN_WORDS.includes(word)) out.admin = word as AgentAdminWord;
    else if ((m = /^(\d+)%$/.exec(word))) out.weightPercent = Math.min(Number(m[1]), 25_600);
    else if ((m = /^maxconn:(\d+)$/.exec(word))) out.maxconn = Number(m[1]);
    else out.unknown.push(raw);
  }
  return out;
}

/** A description HAProxy can show: one line, printable, short. */
function cleanComment(text: string): string {
  const one = text.replace(/[^\x20-\x7e]+/g, ' ').replace(/\s+/g, ' ').trim();
  return one.length > MAX_COMMENT ? `${one.slice(0, MAX_COMMENT - 1)}…`.replace(/[^\x20-\x7e]/g, '') : one;
}

export interface LicenseFactor {
  /** 1-100: how much of its weight the server should advertise. */
  percent: number;
  /** Zero free tokens: advertise drain so new clients go to a server that has some. */
  exhausted: boolean;
  /** What the factor is based on, for the reply's comment and /status; null when no scaling applies. */
  note: string | null;
}

const FULL: LicenseFactor = { percent: 100, exhausted: false, note: null };

/**
 * `agent.weight_from`: weight scaled by the free tokens of one feature, never below min_percent
 * while a token is free. Missing data never drains a server: no parsed license output, or a feature
 * that is not listed, leaves the weight alone (and says so). Uncounted features have no pool.
 * A feature listed several times (several INCREMENT lines, several vendors) is summed.
 * An output cut at read_limit lists only the features before the cut, and it is cut at peak use:
 * a feature after it is judged by `whole`, the last output read whole, and says how old that is
 * (at no less than min_percent: an old count does not drain); with none, min_percent, as "not
 * listed" there would advertise every token free exactly then. So is every feature after a check
 * that failed while the server is still UP (`failed`: why): lmstat times out at peak use too.
 */
export function licenseWeightFactor(
  license: LicenseInfo | null | undefined,
  from: WeightFromConfig | null,
  whole: { license: LicenseInfo; at: number } | null = null,
  now = performance.now(),
  failed: string | null = null,
): LicenseFactor {
  if (!from) return FULL;
  if (failed !== null) return earlierFactor(from, whole, now, `last check failed: ${failed}`) ?? { ...FULL, note: `${from.feature} not in license output` };
  if (!license) return { ...FULL, note: `no license data for ${from.feature}` };
  const factor = featureFactor(license, from);
  // Missing data never drains: the licenses of the feature after the cut may have free tokens.
  if (factor?.exhausted && license.truncated && license.features_may_continue) return { percent: from.min_percent, exhausted: false, note: `${factor.note} before the output was cut; more may follow` };
  if (factor !== null) return factor;
  if (license.truncated) {
    const earlier = earlierFactor(from, whole, now, `output since cut before ${from.feature}`, 'output cut before it');
    if (earlier) return earlier;
  }
  return { ...FULL, note: `${from.feature} not in license output` };
}

/**
 * The factor from `whole` when the latest output has no count (`since`: why), at no less than
 * min_percent; min_percent without one; null when `whole` does not list the feature.
 */
function earlierFactor(from: WeightFromConfig, whole: { license: LicenseInfo; at: number } | null, now: number, since: string, notYet = since): LicenseFactor | null {
  if (whole === null) return { percent: from.min_percent, exhausted: false, note: `${from.feature} not counted yet: ${notYet}` };
  const earlier = featureFactor(whole.license, from);
  // An old count never drains: tokens freed since would not bring the server back until an
  // output is read whole again, which may not happen before the peak ends.
  const stale = earlier?.exhausted ? { ...earlier, percent: from.min_percent, exhausted: false } : earlier;
  return stale ? { ...stale, note: `${stale.note} ${Math.max(0, Math.round((now - whole.at) / 1000))}s ago; ${since}` } : null;
}

/** The factor from one output's count of the feature; null when the output does not list it. */
function featureFactor(license: LicenseInfo, from: WeightFromConfig): LicenseFactor | null {
  let issued = 0;
  let inUse = 0;
  let seen = false;
  for (const f of license.features) {
    if (f.name !== from.feature) continue;
    if (f.issued === null) return { ...FULL, note: `${from.feature} is uncounted` };
    seen = true;
    issued += f.issued;
    inUse += f.in_use;
  }
  if (!seen) return null;
  const free = Math.max(0, issued - inUse);
  if (free === 0) return { percent: 0, exhausted: true, note: `no free ${from.feature} tokens (${inUse} of ${issued} in use)` };
  const percent = Math.min(100, Math.max(from.min_percent, Math.round((100 * free) / issued)));
  return { percent, exhausted: false, note: `${from.feature} ${free}/${issued} free` };
}

/**
 * What a sidecar says for `servers` (one server, or a whole backend):
 * - health: up when any of them is UP and not in MAINT (STATUS "Running" in the same sense);
 *   none while every one not in MAINT started DOWN by its init_state and no check of it failed yet
 *   (it is not UP yet), else down;
 * - admin: ready when any of them can take new connections by admin state and token supply,
 *   else drain while any is not in MAINT or a triad standby, else maint. A FlexLM triad standby
 *   (Server.standby) says `up maint`: HAProxy sends a MAINT server no client, persistent ones
 *   included, where a DRAIN server still takes those; `down` would log a DOWN, alert and end its
 *   sessions for a member that is healthy. The `ready` that the check finding it MASTER brings
 *   makes it UP at once (HAProxy ends a MAINT with "start OK", no rise);
 * - weight: their runtime weights × agent % (unrounded) × license factor, relative to their
 *   configured weights, counting the UP ones; when none is UP, what they will carry when they come
 *   back, so HAProxy sees no weight-0 blip on recovery.
 * - maxconn: the sum of their maxconn when every one of them has one.
 */
export function agentReportFor(servers: readonly Server[], from: WeightFromConfig | null): AgentReply {
  let configured = 0;
  let upWeight = 0;
  let anyWeight = 0;
  let ready = false;
  let notMaint = false;
  let standby: Server | null = null;
  let standbyWeight = 0;
  let maxconn = 0;
  let allMaxconn = servers.length > 0;
  const notes: string[] = [];
  for (const s of servers) {
    configured += s.configuredWeight;
    if (s.maxconn > 0) maxconn += s.maxconn;
    else allMaxconn = false;
    if (s.inMaint) continue;
    const waiting = s.standby && s.up;
    if (waiting) standby ??= s;
    else notMaint = true;
    const failed = s.up && s.lastCheck?.ok === false ? s.lastCheck.reason : null;
    const lic = licenseWeightFactor(s.lastCheck?.license, from, s.lastWholeLicense, performance.now(), failed);
    if (lic.note) notes.push(servers.length > 1 ? `${s.name}: ${lic.note}` : lic.note);
    if (s.draining || lic.exhausted) continue;
    const w = (s.agentScaledWeight * lic.percent) / 100;
    // Said with its maint: what it carries as MASTER, so HAProxy sees no blip when it becomes one.
    if (waiting) {
      standbyWeight += w;
      continue;
    }
    ready = true;
    anyWeight += w;
    if (s.up) upWeight += w;
  }
  const up = servers.some((s) => s.up && !s.inMaint);
  // Started DOWN by init_state, none UP yet and no check failed: a sidecar that was restarted
  // knows nothing of the license service yet. HAProxy marks a server DOWN at once on an agent's "down" (no `fall`),
  // which logged a DOWN and failed over at every sidecar restart; no health word leaves HAProxy's
  // own state, which its health check keeps deciding, as while the agent could not be reached.
  const awaiting = !up && servers.some((s) => !s.inMaint) && servers.every((s) => s.inMaint || s.awaitingFirstUp);
  const admin: AgentAdminWord = ready ? 'ready' : notMaint ? 'drain' : 'maint';
  const weight = admin === 'maint' && standby !== null ? standbyWeight : up ? upWeight : anyWeight;
  const comments: string[] = [];
  if (admin === 'maint') comments.push(standby === null ? 'maintenance' : (standby.lastCheck?.reason ?? standby.stateText));
  // fully-down with rise 3: DOWN 1/3 after a passed check is on its way UP, not DOWN either.
  else if (awaiting) comments.push(servers.find((s) => s.firstCheckDone && !s.inMaint)?.stateText ?? 'no check yet');
  else if (!up) comments.push(downReason(servers));
  else if (admin === 'drain' && servers.some((s) => s.draining && !s.inMaint)) comments.push('draining');
  comments.push(...notes);
  return {
    health: up ? 'up' : awaiting ? null : 'down',
    admin,
    weightPercent: percentOf(weight, configured),
    maxconn: allMaxconn ? maxconn : null,
    comment: comments.join('; '),
  };
}

/** Percentage of the configured weight, never 0 for a positive weight (0% means drain to HAProxy). */
function percentOf(weight: number, configured: number): number {
  if (weight <= 0) return 0;
  if (configured <= 0) return 100;
  return Math.max(1, Math.round((100 * weight) / configured));
}

function downReason(servers: readonly Server[]): string {
  if (servers.length === 0) return 'no server';
  if (servers.length === 1) {
    const s = servers[0]!;
    const why = s.agent?.state === 'down' ? s.agent.reason : s.lastCheck?.reason;
    return why ? `${s.stateText}: ${why}` : s.stateText;
  }
  return `no server up: ${servers.map((s) => `${s.name} ${s.inMaint ? 'MAINT' : (s.lastCheck?.reason ?? s.stateText)}`).join(', ')}`;
}
