import type { Node } from 'yaml';
import { isIP } from 'node:net';
import { formatHostPort, isWildcard, type HostPort } from './address.js';
import { formatDuration } from './duration.js';
import { readAllow } from './source-networks.js';
import type { ConfigIssue } from '../errors.js';
import type { YamlReader } from './yaml-reader.js';

/** A literal substring, or a regular expression written as "/pattern/flags". */
export type Matcher = { literal: string } | { regex: RegExp };

export type CheckType = 'tcp' | 'status' | 'send-expect' | 'http' | 'exec' | 'agent' | 'none';
export const CHECK_TYPES: readonly CheckType[] = ['tcp', 'status', 'send-expect', 'http', 'exec', 'agent', 'none'];
export type Balance = 'roundrobin' | 'leastconn' | 'source';
export type Failback = 'auto' | 'manual';
export type LicenseParser = 'lmstat' | 'dsls';

export interface CheckConfig {
  type: CheckType;
  inter: number;
  fastinter: number;
  downinter: number;
  rise: number;
  fall: number;
  timeout: number;
  /** Probe this port on the server's host instead of its service port (e.g. a sidecar's status port). */
  port: number | null;
  /** send-expect: bytes to send ("" sends nothing and only reads). */
  send: string;
  /** send-expect / http body / exec stdout. */
  expect: Matcher | null;
  /** Bytes read from a check reply before it counts as a failure. */
  read_limit: number;
  /** http */
  path: string;
  expect_status: number[];
  /**
   * exec: argv array, never a shell. `{host}` and `{port}` in any element are replaced (plain text)
   * by the checked server's host and port (`port` above when set), so one backend check serves
   * several servers: [lmutil, lmstat, -a, -c, "{port}@{host}"].
   */
  argv: string[];
  /**
   * exec: variables set for the command, over what it keeps of licgate's environment
   * (src/health/probes/check-env.ts): HAProxy's external-check clears the environment too.
   */
  env: Record<string, string>;
  exit_code: number;
  parse: LicenseParser | null;
}

/**
 * HAProxy 3.1 `init-state`: whether a checked server starts UP or DOWN, and whether the first
 * check (up, down) or `fall`/`rise` checks (fully-up, fully-down) can turn it.
 */
export type InitState = 'up' | 'fully-up' | 'down' | 'fully-down';
export const INIT_STATES: readonly InitState[] = ['up', 'fully-up', 'down', 'fully-down'];

export interface ServerConfig {
  name: string;
  address: HostPort;
  weight: number;
  tier: number;
  maxconn: number;
  init_state: InitState;
}

export interface BackendConfig {
  name: string;
  balance: Balance;
  stick: 'source' | null;
  stick_ttl: number;
  stick_size: number;
  failback: Failback;
  retries: number;
  observe_errors: number;
  /**
   * HAProxy `on-marked-down shutdown-sessions`: when checks, passive health or the agent mark a
   * server DOWN, its open sessions are closed at once, so their clients reconnect to a server that
   * answers instead of waiting for TCP to give up on a vanished host. Null (HAProxy's default): they stay.
   */
  on_marked_down: 'shutdown-sessions' | null;
  connect_timeout: number;
  /** A connect unanswered this long (or longer for a server usually slower) is raced on the next server; 0: never. */
  connect_race: number;
  /** How long a connection may wait for a free slot when every server is at its maxconn. */
  queue_timeout: number;
  /** Connections waiting for a slot, at most; more are refused at once. */
  max_queue: number;
  check: CheckConfig;
  /** HAProxy `agent-port`: also read an agent line from each server's host on this port (weight, drain, down, maint). */
  agent_port: number | null;
  /** HAProxy `agent-inter`: how often that agent is asked. */
  agent_inter: number;
  /** HAProxy `agent-send`: sent to the agent before reading its line, so one agent can answer per backend. */
  agent_send: string;
  servers: ServerConfig[];
}

export interface FrontendConfig {
  name: string;
  listen: HostPort;
  backend: string;
  server_port: number | null;
  inband_status: boolean;
  idle_timeout: number;
  keepalive: boolean;
  maxconn: number;
  /** Source networks accepted (canonical `address/prefix`); null: every address. */
  allow: string[] | null;
}

export interface AdminConfig {
  listen: HostPort;
  token_file: string | null;
  /** Where the admin states and weights set at runtime are kept across restarts (serve/admin-state-file.ts); null: not kept. */
  state_file: string | null;
}

/** Agent weight scaled by the free tokens of one license feature (from the check's parsed license output). */
export interface WeightFromConfig {
  feature: string;
  /** Lowest percentage reported while at least one token is free; zero free tokens reports drain. */
  min_percent: number;
}

/** What a webhook can subscribe to (`notify.webhooks[].events`); see observe/notifier.ts. */
export const NOTIFY_EVENTS = ['server-state', 'tier-change', 'backend-down', 'reload-ok', 'reload-failed', 'vrrp-state'] as const;
export type NotifyEventName = (typeof NOTIFY_EVENTS)[number];

export interface WebhookConfig {
  url: string;
  headers: Record<string, string>;
  events: NotifyEventName[] | null;
}

/**
 * `peers`: this host shares its stick tables with the other host(s) of a keepalived pair
 * (src/peers/): it pushes its own changes to each remote and takes theirs on `listen`.
 */
export interface PeersConfig {
  listen: HostPort;
  /** IP addresses: the listener admits exactly these, as `allow` does. */
  remotes: HostPort[];
  token_file: string;
}

export const MAX_PEER_REMOTES = 8;

export interface Config {
  file: string;
  /** What licgate runs with but an admin should hear about; `licgate validate` prints, start-up and reloads log them. */
  warnings: ConfigIssue[];
  admin: AdminConfig | null;
  status: { listen: HostPort; backend: string | null; allow: string[] | null } | null;
  agent: { listen: HostPort; backend: string; server: string | null; weight_from: WeightFromConfig | null; allow: string[] | null } | null;
  notify: { webhooks: WebhookConfig[] };
  /** keepalived's role for this host, as its notify hook records it (observe/vrrp-state.ts); reported, never acted on. */
  vrrp: { state_file: string } | null;
  log: { level: LogLevel; format: 'json' | 'pretty' };
  shutdown_grace: number;
  /** After SIGTERM, /health is 503 at once but frontends keep accepting this long (HAProxy's `grace`). */
  shutdown_delay: number;
  frontends: FrontendConfig[];
  backends: BackendConfig[];
  peers: PeersConfig | null;
}

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

export const DEFAULTS = {
  adminListen: { host: '127.0.0.1', port: 8404 },
  shutdownGrace: 30_000,
  // The shipped keepalived config marks a host FAULT after two failed 1 s checks and the peer takes
  // the VIP about 0.15 s later (1.2-2.2 s in all): 3 s of still accepting covers that, so a planned
  // failover refuses nobody.
  shutdownDelay: 3_000,
  check: { inter: 2000, rise: 2, fall: 3, timeout: 1000, readLimit: 16 * 1024 },
  connectTimeout: 3000,
  // RFC 8305's Connection Attempt Delay: far above a LAN or WAN connect, far below a SYN retransmit.
  connectRace: 250,
  retries: 2,
  observeErrors: 1,
  weight: 1,
  stickTtl: 8 * 3_600_000,
  stickSize: 100_000,
  maxQueue: 10_000,
  agentInter: 2000,
  weightFromMinPercent: 10,
} as const;

export const LIMITS = { maxWeight: 256, maxTier: 9, maxRetries: 16, maxReadLimit: 1024 * 1024 } as const;

/** A year: idle_timeout and stick_ttl are compared at each sweep, never put in a timer (MAX_TIMER_MS). */
const MAX_SWEPT_MS = 365 * 86_400_000;

const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const NAME_TEXT = 'a name of 1-64 letters, digits, "_", "." or "-"';

/** Reads the whole document into a Config, recording every problem on the reader. */
export function readConfig(r: YamlReader, root: Node | null): Config | undefined {
  const top = r.map(root, 'config', ['admin', 'status', 'agent', 'notify', 'vrrp', 'log', 'shutdown_grace', 'shutdown_delay', 'frontends', 'backends', 'peers']);
  if (!top) return undefined;
  const opt = <T>(key: string, read: (n: Node | null) => T | undefined): T | null | undefined =>
    top.has(key) ? read(top.get(key)!) : null;

  const cfg = {
    file: r.file,
    warnings: r.warnings,
    admin: opt('admin', (n) => readAdmin(r, n)),
    status: opt('status', (n) => {
      const m = r.section(n, 'status', ['listen', 'backend', 'allow']);
      if (!m) return undefined;
      return r.mark({ listen: req(r, m, n, 'status', 'listen', (v) => r.hostPort(v, 'status.listen', { allowPortZero: true })), backend: m.has('backend') ? r.string(m.get('backend')!, 'status.backend') : null, allow: m.has('allow') ? readAllow(r, m.get('allow')!, 'status.allow') : null }, m, n);
    }),
    agent: opt('agent', (n) => {
      const m = r.section(n, 'agent', ['listen', 'backend', 'server', 'weight_from', 'allow']);
      if (!m) return undefined;
      return r.mark({
        listen: req(r, m, n, 'agent', 'listen', (v) => r.hostPort(v, 'agent.listen', { allowPortZero: true })),
        backend: req(r, m, n, 'agent', 'backend', (v) => r.string(v, 'agent.backend')),
        server: m.has('server') ? r.string(m.get('server')!, 'agent.server') : null,
        weight_from: m.has('weight_from') ? readWeightFrom(r, m.get('weight_from')!) : null,
        allow: m.has('allow') ? readAllow(r, m.get('allow')!, 'agent.allow') : null,
      }, m, n);
    }),
    notify: opt('notify', (n) => readNotify(r, n)) ?? { webhooks: [] },
    vrrp: opt('vrrp', (n) => {
      const m = r.section(n, 'vrrp', ['state_file']);
      if (!m) return undefined;
      const file = req(r, m, n, 'vrrp', 'state_file', (v) => r.string(v, 'vrrp.state_file', { pattern: /^\/.*[^/]$/, patternText: 'an absolute file path (where licgate-vrrp-notify.sh writes, e.g. /run/licgate/vrrp-state)' }));
      return file === undefined ? undefined : { state_file: file };
    }),
    log: opt('log', (n) => {
      const m = r.section(n, 'log', ['level', 'format']);
      if (!m) return undefined;
      return {
        level: m.has('level') ? r.oneOf(m.get('level')!, 'log.level', LOG_LEVELS) : 'info',
        format: m.has('format') ? r.oneOf(m.get('format')!, 'log.format', ['json', 'pretty'] as const) : 'json',
      };
    }) ?? { level: 'info', format: 'json' },
    shutdown_grace: opt('shutdown_grace', (n) => r.duration(n, 'shutdown_grace')) ?? DEFAULTS.shutdownGrace,
    shutdown_delay: opt('shutdown_delay', (n) => r.duration(n, 'shutdown_delay', 0, 600_000)) ?? DEFAULTS.shutdownDelay,
    frontends: opt('frontends', (n) => r.list(n, 'frontends')?.map((f, i) => readFrontend(r, f, i))) ?? [],
    backends: opt('backends', (n) => r.list(n, 'backends')?.map((b, i) => readBackend(r, b, i))) ?? [],
    peers: opt('peers', (n) => readPeers(r, n)),
  };
  return cfg as Config;
}

function req<T>(r: YamlReader, m: Map<string, Node | null>, parent: Node | null, what: string, key: string, read: (n: Node | null) => T | undefined): T | undefined {
  if (!m.has(key)) return r.error(parent, `${what}: missing required key "${key}"`);
  return read(m.get(key)!);
}

function readAdmin(r: YamlReader, n: Node | null): AdminConfig | undefined {
  const m = r.section(n, 'admin', ['listen', 'token_file', 'state_file']);
  if (!m) return undefined;
  return r.mark({
    listen: m.has('listen') ? r.hostPort(m.get('listen')!, 'admin.listen', { allowPortZero: true })! : DEFAULTS.adminListen,
    token_file: m.has('token_file') ? r.string(m.get('token_file')!, 'admin.token_file')! : null,
    state_file: m.has('state_file') ? r.string(m.get('state_file')!, 'admin.state_file')! : null,
  }, m, n);
}

function readPeers(r: YamlReader, n: Node | null): PeersConfig | undefined {
  const m = r.section(n, 'peers', ['listen', 'remotes', 'token_file']);
  if (!m) return undefined;
  const listen = req(r, m, n, 'peers', 'listen', (v) => r.hostPort(v, 'peers.listen', { allowPortZero: true }));
  const remotes = req(r, m, n, 'peers', 'remotes', (v) => {
    const list = r.seq(v, 'peers.remotes');
    if (list === undefined) return undefined;
    if (list.length === 0 || list.length > MAX_PEER_REMOTES) return r.error(v, `peers.remotes: expected 1-${MAX_PEER_REMOTES} addresses (the other host of the keepalived pair), found ${list.length}`);
    // One pusher per address: a second copy is a typo for another host, which would never be pushed to.
    const seen = new Map<string, number>();
    return list.map((x, i) => {
      const hp = r.hostPort(x, `peers.remotes[${i}]`);
      const first = hp === undefined ? undefined : seen.get(formatHostPort(hp));
      if (first !== undefined) return r.error(x, `peers.remotes[${i}]: expected each remote once, found ${formatHostPort(hp!)} again (remotes[${first}])`);
      if (hp !== undefined) seen.set(formatHostPort(hp), i);
      // The listener admits remotes by address, as `allow` does: a name could resolve elsewhere later.
      if (hp !== undefined && isIP(hp.host) === 0) return r.error(x, `peers.remotes[${i}]: expected an IP address (the peers listener admits remotes by address), found "${hp.host}"`);
      if (hp !== undefined && listen !== undefined && formatHostPort(hp) === formatHostPort(listen)) return r.error(x, `peers.remotes[${i}]: ${formatHostPort(hp)} is this host's own peers.listen; list the other host(s)`);
      // The pusher connects from listen's address when it names one: to the other family, connect()
      // fails with EINVAL at every retry, and the pair never shares a table.
      const family = listen === undefined || isWildcard(listen.host) ? 0 : isIP(listen.host);
      if (hp !== undefined && family !== 0 && isIP(hp.host) !== family) return r.error(x, `peers.remotes[${i}]: expected an IPv${family} address as peers.listen ${listen!.host} is (this host connects from its listen address), found ${formatHostPort(hp)}`);
      return hp;
    }) as HostPort[];
  });
  const token_file = req(r, m, n, 'peers', 'token_file', (v) => r.string(v, 'peers.token_file'));
  return r.mark({ listen: listen!, remotes: remotes!, token_file: token_file! }, m, n);
}

function readWeightFrom(r: YamlReader, n: Node | null): WeightFromConfig | undefined {
  const m = r.map(n, 'agent.weight_from', ['feature', 'min_percent']);
  if (!m) return undefined;
  return {
    feature: req(r, m, n, 'agent.weight_from', 'feature', (v) => r.string(v, 'agent.weight_from.feature'))!,
    // At least 1: a reported 0% would drain a server that still has tokens to give.
    min_percent: m.has('min_percent') ? r.int(m.get('min_percent')!, 'agent.weight_from.min_percent', 1, 100)! : DEFAULTS.weightFromMinPercent,
  };
}

function readNotify(r: YamlReader, n: Node | null): Config['notify'] | undefined {
  const m = r.section(n, 'notify', ['webhooks']);
  if (!m) return undefined;
  const hooks = m.has('webhooks') ? r.list(m.get('webhooks')!, 'notify.webhooks') : [];
  return {
    webhooks: (hooks ?? []).map((h, i) => {
      const what = `notify.webhooks[${i}]`;
      const hm = r.map(h, what, ['url', 'headers', 'events']);
      if (!hm) return undefined as unknown as WebhookConfig;
      const url = req(r, hm, h, what, 'url', (v) => {
        const u = r.string(v, `${what}.url`);
        if (u === undefined || /^https?:\/\/\S+$/.test(u)) return u;
        // Quoted after any user:password@ and up to its first "/", "?" or "#": the path of a
        // webhook URL is often its secret (Slack's /services/T…/B…/secret), so is a ?token=, and
        // this message goes to the log and to the other webhooks.
        return r.error(v, `${what}.url: expected an http:// or https:// URL, found "${u.replace(/^.*@/s, '…@').replace(/([/?#]).*$/s, '$1…')}"`);
      });
      const headers = hm.has('headers') ? r.httpHeaders(hm.get('headers')!, `${what}.headers`) ?? {} : {};
      const events = hm.has('events') ? r.seq(hm.get('events')!, `${what}.events`)?.map((e, j) => r.oneOf(e, `${what}.events[${j}]`, NOTIFY_EVENTS)!) ?? null : null;
      return { url: url!, headers, events };
    }),
  };
}

/**
 * The longest a healthy license session stays silent, with a margin: FlexLM heartbeats about every 2
 * minutes, DSLS up to about 17. An idle_timeout below it ends such sessions between heartbeats.
 */
const LICENSE_SILENCE_MS = 30 * 60_000;

function idleTimeout(r: YamlReader, n: Node, what: string): number | undefined {
  const ms = r.duration(n, what, 0, MAX_SWEPT_MS);
  // Valid, as a test or a non-license port may want it; but on a license port every client would
  // lose its session at the first quiet spell and check out again (a second license, until the
  // first times out on the server).
  if (ms !== undefined && ms > 0 && ms < LICENSE_SILENCE_MS) {
    r.warn(n, `${what}: ${formatDuration(ms)} cuts license sessions that are silent between heartbeats (FlexLM about 2 minutes, DSLS up to about 17), and their clients check out again; set ${formatDuration(LICENSE_SILENCE_MS)} or more, or leave it off`);
  }
  return ms;
}

function readFrontend(r: YamlReader, n: Node | null, i: number): FrontendConfig | undefined {
  const what = `frontends[${i}]`;
  const m = r.map(n, what, ['name', 'listen', 'backend', 'server_port', 'inband_status', 'idle_timeout', 'keepalive', 'maxconn', 'allow']);
  if (!m) return undefined;
  const name = req(r, m, n, what, 'name', (v) => r.string(v, `${what}.name`, { pattern: NAME, patternText: NAME_TEXT }));
  const w = name ? `frontend "${name}"` : what;
  return r.mark({
    name: name!,
    listen: req(r, m, n, w, 'listen', (v) => r.hostPort(v, `${w}.listen`, { allowPortZero: true }))!,
    backend: req(r, m, n, w, 'backend', (v) => r.string(v, `${w}.backend`))!,
    server_port: m.has('server_port') ? r.int(m.get('server_port')!, `${w}.server_port`, 1, 65535)! : null,
    inband_status: m.has('inband_status') ? r.bool(m.get('inband_status')!, `${w}.inband_status`)! : true,
    idle_timeout: m.has('idle_timeout') ? idleTimeout(r, m.get('idle_timeout')!, `${w}.idle_timeout`)! : 0,
    keepalive: m.has('keepalive') ? r.bool(m.get('keepalive')!, `${w}.keepalive`)! : true,
    maxconn: m.has('maxconn') ? r.int(m.get('maxconn')!, `${w}.maxconn`, 0, 10_000_000)! : 0,
    allow: m.has('allow') ? readAllow(r, m.get('allow')!, `${w}.allow`)! : null,
  }, m, n);
}

/** The backend keys read with r.duration (milliseconds): a reload's change list prints them as durations. */
export const BACKEND_DURATIONS: ReadonlySet<string> = new Set<keyof BackendConfig>(['stick_ttl', 'connect_timeout', 'connect_race', 'queue_timeout', 'agent_inter']);

const BACKEND_KEYS = ['name', 'balance', 'stick', 'stick_ttl', 'stick_size', 'failback', 'retries', 'observe_errors', 'on_marked_down', 'connect_timeout', 'connect_race', 'queue_timeout', 'max_queue', 'check', 'agent_port', 'agent_inter', 'agent_send', 'servers'];

function readBackend(r: YamlReader, n: Node | null, i: number): BackendConfig | undefined {
  const what = `backends[${i}]`;
  const m = r.map(n, what, BACKEND_KEYS);
  if (!m) return undefined;
  const name = req(r, m, n, what, 'name', (v) => r.string(v, `${what}.name`, { pattern: NAME, patternText: NAME_TEXT }));
  const w = name ? `backend "${name}"` : what;
  const get = <T>(key: string, read: (v: Node | null) => T | undefined, dflt: T): T => (m.has(key) ? (read(m.get(key)!) as T) : dflt);
  const servers = req(r, m, n, w, 'servers', (v) => r.seq(v, `${w}.servers`));
  if (servers && servers.length === 0) r.error(m.get('servers')!, `${w}.servers: expected at least one server`);
  // Read in the literal below, where it always was (errors are reported in reading order); the
  // servers after it need its type.
  let check: CheckConfig | undefined;
  const connectTimeout = get('connect_timeout', (v) => r.duration(v, `${w}.connect_timeout`, 1, 600_000), DEFAULTS.connectTimeout);
  // Options of a feature the backend does not have would be read and never used: stick_ttl looks
  // like FlexLM stickiness, but without "stick: source" there is no table.
  for (const key of ['stick_ttl', 'stick_size']) {
    if (m.has('stick') || !m.has(key)) continue;
    const fix = m.has('balance') && r.scalar(m.get('balance')!) === 'source' ? ' ("balance: source" keeps no table); remove' : `; add "stick: source" (a FlexLM client's lmgrd and vendor connections must meet one server) or remove`;
    r.error(m.get(key) ?? n, `${w}.${key}: sets the stick table of "stick: source", which this backend does not have${fix} ${key}`);
  }
  if (m.has('agent_inter') && !m.has('agent_port')) r.error(m.get('agent_inter') ?? n, `${w}.agent_inter: how often the agent on agent_port is read, but agent_port is not set (a check of type agent runs every inter)`);
  return r.mark({
    name: name!,
    balance: get('balance', (v) => r.oneOf(v, `${w}.balance`, ['roundrobin', 'leastconn', 'source'] as const), 'roundrobin'),
    stick: get('stick', (v) => r.oneOf(v, `${w}.stick`, ['source'] as const), null),
    stick_ttl: get('stick_ttl', (v) => r.duration(v, `${w}.stick_ttl`, 1000, MAX_SWEPT_MS), DEFAULTS.stickTtl),
    stick_size: get('stick_size', (v) => r.int(v, `${w}.stick_size`, 1, 10_000_000), DEFAULTS.stickSize),
    failback: get('failback', (v) => r.oneOf(v, `${w}.failback`, ['auto', 'manual'] as const), 'auto'),
    retries: get('retries', (v) => r.int(v, `${w}.retries`, 0, LIMITS.maxRetries), DEFAULTS.retries),
    observe_errors: get('observe_errors', (v) => r.int(v, `${w}.observe_errors`, 0, 1000), DEFAULTS.observeErrors),
    on_marked_down: get('on_marked_down', (v) => r.oneOf(v, `${w}.on_marked_down`, ['shutdown-sessions'] as const), null),
    connect_timeout: connectTimeout,
    connect_race: get('connect_race', (v) => r.duration(v, `${w}.connect_race`, 0, 600_000), DEFAULTS.connectRace),
    // HAProxy's `timeout queue` defaults to `timeout connect` too.
    queue_timeout: get('queue_timeout', (v) => r.duration(v, `${w}.queue_timeout`, 1, 3_600_000), connectTimeout),
    max_queue: get('max_queue', (v) => r.int(v, `${w}.max_queue`, 0, 1_000_000), DEFAULTS.maxQueue),
    check: (check = readCheck(r, m.has('check') ? m.get('check')! : null, `${w}.check`))!,
    agent_port: get('agent_port', (v) => r.int(v, `${w}.agent_port`, 1, 65535), null),
    agent_inter: get('agent_inter', (v) => r.duration(v, `${w}.agent_inter`, 100, 3_600_000), DEFAULTS.agentInter),
    agent_send: get('agent_send', (v) => (r.scalar(v) === '' ? '' : r.string(v, `${w}.agent_send`)), ''),
    servers: (servers ?? []).map((s, j) => readServer(r, s, `${w}.servers[${j}]`, check?.type)!),
  }, m, n);
}

const CHECK_KEYS = ['type', 'inter', 'fastinter', 'downinter', 'rise', 'fall', 'timeout', 'port', 'send', 'expect', 'read_limit', 'path', 'expect_status', 'argv', 'env', 'exit_code', 'parse'];

/** The check types that read each option; the rest would ignore it. */
const CHECK_OPTION_TYPES: readonly (readonly [string, readonly CheckType[]])[] = [
  ['argv', ['exec']],
  ['env', ['exec']],
  ['parse', ['exec']],
  ['exit_code', ['exec']],
  ['path', ['http']],
  ['expect_status', ['http']],
  ['send', ['send-expect', 'agent']],
  ['expect', ['send-expect', 'http', 'exec']],
  ['read_limit', ['send-expect', 'status', 'http', 'exec', 'agent']],
];

function typesText(types: readonly string[]): string {
  return types.length === 1 ? `type ${types[0]}` : `types ${types.slice(0, -1).join(', ')} and ${types[types.length - 1]}`;
}

export function readCheck(r: YamlReader, n: Node | null, what: string): CheckConfig | undefined {
  const m = r.section(n, what, CHECK_KEYS);
  if (!m) return undefined;
  const get = <T>(key: string, read: (v: Node | null) => T | undefined, dflt: T): T => (m.has(key) ? (read(m.get(key)!) as T) : dflt);
  const type = get('type', (v) => r.oneOf(v, `${what}.type`, CHECK_TYPES), 'tcp' as CheckType);
  const inter = get('inter', (v) => r.duration(v, `${what}.inter`, 10), DEFAULTS.check.inter);
  const argv = get('argv', (v) => nonEmpty(r, v, `${what}.argv`, r.stringList(v, `${what}.argv`), 'a command and its arguments, like [lmutil, lmstat, -a, -c, 27000@localhost]'), [] as string[]);
  if (type === 'exec' && !m.has('argv')) r.error(n, `${what}: type exec needs "argv", a list like [lmutil, lmstat, -a, -c, 27000@localhost]`);
  if (type === 'send-expect' && !m.has('expect') && !m.has('send')) r.error(n, `${what}: type send-expect needs "send" and/or "expect"`);
  // Options another check type would silently ignore are errors: a `parse: lmstat` that never runs
  // looks configured but is not, and HAProxy's tcp-check send/expect written on type tcp left a
  // check that only connects. A misspelt type was reported already.
  for (const [key, owners] of CHECK_OPTION_TYPES) {
    if (type === undefined || owners.includes(type) || !m.has(key)) continue;
    const hint = type === 'tcp' && (key === 'send' || key === 'expect') ? " (tcp-check's send/expect: type send-expect)" : '';
    r.error(m.get(key) ?? n, `${what}.${key}: only used by ${typesText(owners)}, but the type is ${type}${hint}`);
  }
  if (type === 'exec' && m.has('parse') && m.has('exit_code')) {
    r.error(m.get('exit_code') ?? n, `${what}.exit_code: not used with "parse", which judges health from the output (lmutil exits 0 even when a server is down); remove one`);
  }
  return {
    type,
    inter,
    fastinter: get('fastinter', (v) => r.duration(v, `${what}.fastinter`, 10), inter),
    downinter: get('downinter', (v) => r.duration(v, `${what}.downinter`, 10), inter),
    rise: get('rise', (v) => r.int(v, `${what}.rise`, 1, 100), DEFAULTS.check.rise),
    fall: get('fall', (v) => r.int(v, `${what}.fall`, 1, 100), DEFAULTS.check.fall),
    // lmstat on a triad waits for each member, dead ones included: 1 s would fail a healthy member whenever a peer is down.
    timeout: get('timeout', (v) => r.duration(v, `${what}.timeout`, 1, 600_000), type === 'exec' ? 10_000 : DEFAULTS.check.timeout),
    port: get('port', (v) => r.int(v, `${what}.port`, 1, 65535), null),
    send: get('send', (v) => (r.scalar(v) === '' ? '' : r.string(v, `${what}.send`)), ''),
    expect: get('expect', (v) => readMatcher(r, v, `${what}.expect`), null),
    // exec: per output stream. `lmstat -a` lists every checkout, easily more than 16 KiB on a busy server.
    read_limit: get('read_limit', (v) => r.int(v, `${what}.read_limit`, 16, LIMITS.maxReadLimit), type === 'exec' ? LIMITS.maxReadLimit : DEFAULTS.check.readLimit),
    path: get('path', (v) => r.string(v, `${what}.path`, { pattern: /^\//, patternText: 'a path starting with /' }), '/'),
    expect_status: get('expect_status', (v) => {
      const one = r.scalar(v);
      if (typeof one === 'number') return [r.int(v, `${what}.expect_status`, 100, 599)!];
      const list = r.seq(v, `${what}.expect_status`)?.map((x, i) => r.int(x, `${what}.expect_status[${i}]`, 100, 599)!);
      return nonEmpty(r, v, `${what}.expect_status`, list, 'one or more HTTP status codes, like [200, 204]');
    }, [200]),
    argv,
    env: get('env', (v) => r.environment(v, `${what}.env`), {}),
    exit_code: get('exit_code', (v) => r.int(v, `${what}.exit_code`, 0, 255), 0),
    parse: get('parse', (v) => r.oneOf(v, `${what}.parse`, ['lmstat', 'dsls'] as const), null),
  };
}

/** An empty list where a check needs at least one entry: it would validate, then fail every check. */
function nonEmpty<T>(r: YamlReader, n: Node | null, what: string, list: T[] | undefined, expected: string): T[] | undefined {
  return list?.length === 0 ? r.error(n, `${what}: expected ${expected}, found an empty list`) : list;
}

function readMatcher(r: YamlReader, n: Node | null, what: string): Matcher | undefined {
  const s = r.string(n, what);
  if (s === undefined) return undefined;
  const re = /^\/(.*)\/([dgimsuy]*)$/s.exec(s);
  if (!re) return { literal: s };
  try {
    return { regex: new RegExp(re[1]!, re[2]!.replace('g', '')) };
  } catch (e) {
    return r.error(n, `${what}: expected a valid /regex/, found ${s} (${(e as Error).message})`);
  }
}

/** `checkType`: the backend's, undefined when it was wrong (reported already). */
function readServer(r: YamlReader, n: Node | null, what: string, checkType: CheckType | undefined): ServerConfig | undefined {
  const m = r.map(n, what, ['name', 'address', 'weight', 'backup', 'tier', 'maxconn', 'init_state']);
  if (!m) return undefined;
  const name = req(r, m, n, what, 'name', (v) => r.string(v, `${what}.name`, { pattern: NAME, patternText: NAME_TEXT }));
  const w = name ? `server "${name}"` : what;
  const backup = m.has('backup') ? r.bool(m.get('backup')!, `${w}.backup`) : false;
  let tier = m.has('tier') ? r.int(m.get('tier')!, `${w}.tier`, 0, LIMITS.maxTier) : undefined;
  if (backup && tier !== undefined && tier !== 1) r.error(m.get('tier')!, `${w}: "backup: true" means tier 1, but tier is ${tier}; use one or the other`);
  tier ??= backup ? 1 : 0;
  const initState = m.has('init_state') ? r.oneOf(m.get('init_state')!, `${w}.init_state`, INIT_STATES) : 'up';
  // Only a check moves a server from its initial state: unchecked, DOWN would be for good, and
  // fully-up would be plain up.
  if (checkType === 'none' && initState !== undefined && initState !== 'up') r.error(m.get('init_state')!, `${w}.init_state: ${initState} needs a health check to move it, but the backend's check type is none; remove init_state or set a check`);
  return r.mark({
    name: name!,
    address: req(r, m, n, w, 'address', (v) => r.hostPort(v, `${w}.address`))!,
    weight: m.has('weight') ? r.int(m.get('weight')!, `${w}.weight`, 0, LIMITS.maxWeight)! : DEFAULTS.weight,
    tier,
    maxconn: m.has('maxconn') ? r.int(m.get('maxconn')!, `${w}.maxconn`, 0, 10_000_000)! : 0,
    init_state: initState!,
  }, m, n);
}
