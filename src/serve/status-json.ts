import { formatHostPort } from '../config/address.js';
import { tierName } from '../model/events.js';
import type { Backend } from '../model/backend.js';
import type { Server } from '../model/server.js';
import { wallTimeOf } from '../wall-time.js';

/** The JSON shapes of GET /status; also what `licgate ctl` and the stats page render. */
export function serverJson(s: Server) {
  return {
    name: s.name,
    address: formatHostPort(s.address),
    ...(s.connectHost !== s.address.host || s.dnsError ? { resolved: s.connectHost === s.address.host ? null : s.connectHost, dns_error: s.dnsError } : {}),
    tier: s.tier,
    tier_name: tierName(s.tier),
    state: s.stateText,
    usable: s.usable,
    admin: s.admin,
    weight: s.weight,
    configured_weight: s.configuredWeight,
    effective_weight: s.effectiveWeight,
    agent: s.agent,
    ...(s.agentError !== null ? { agent_error: s.agentError } : {}),
    maxconn: s.maxconn,
    configured_maxconn: s.configuredMaxconn,
    active: s.active,
    total: s.total,
    connect_errors: s.connectErrors,
    connect_ms: roundMs(s.connectTime.smoothed),
    connects_overdue: s.overdue,
    since: new Date(wallTimeOf(s.stateSince)).toISOString(),
    last_check: s.lastCheck && {
      ok: s.lastCheck.ok,
      reason: s.lastCheck.reason,
      duration_ms: s.lastCheck.durationMs,
      at: new Date(wallTimeOf(s.lastCheck.at)).toISOString(),
      ...(s.lastCheck.license ? { license: s.lastCheck.license } : {}),
    },
    // What agent.weight_from counts a feature by once last_check's output was cut before it, or
    // the check failed: without it an admin sees only the cut count, not the one HAProxy is told.
    ...(s.lastWholeLicense ? { last_whole_license: { at: new Date(wallTimeOf(s.lastWholeLicense.at)).toISOString(), license: s.lastWholeLicense.license } } : {}),
  };
}

export function backendJson(b: Backend) {
  return {
    name: b.name,
    balance: b.cfg.balance,
    failback: b.cfg.failback,
    check: b.cfg.check.type,
    running: b.running,
    serving_tier: b.servingTier,
    tier: tierName(b.servingTier),
    servers_up: `${b.upCount}/${b.servers.length}`,
    stick_entries: b.stick ? b.stick.size : null,
    servers: b.servers.map(serverJson),
  };
}

function roundMs(ms: number | null): number | null {
  return ms === null ? null : Math.round(ms * 100) / 100;
}
