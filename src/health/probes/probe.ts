import type { LicenseInfo } from '../parse/license-info.js';
import type { AgentView } from '../../model/server.js';

export interface ProbeTarget {
  /** Where to connect: the server's address, or the last address its name resolved to. */
  host: string;
  port: number;
  /**
   * The server's host as written in the config (a name, before resolution). Protocols that name
   * the server to it, as HTTP's Host header does, use this; absent, `host`.
   */
  name?: string;
  /**
   * What the server carries from its agent (Server.agent): the agent check merges each reply into
   * it, so what a reply does not mention stays as the agent last set it on this server.
   */
  agent?: AgentView | null;
}

export interface ProbeOutcome {
  ok: boolean;
  /** Short, human: goes into /status, STATUS/agent replies and log lines. */
  reason: string;
  license?: LicenseInfo;
  agent?: AgentView;
  /** The check could not run for a reason on licgate's side: no verdict on the server. */
  inconclusive?: boolean;
  /** With ok: a healthy FlexLM triad member that is not the MASTER (Server.standby). */
  standby?: boolean;
  /** With standby: the MASTER's host as the server's own check names it (lmstat's spelling). */
  master?: string;
}

/**
 * One kind of active check. `run` must settle promptly once `signal` aborts (the check timeout)
 * and release every socket or process it opened.
 */
export interface Probe {
  run(target: ProbeTarget, signal: AbortSignal): Promise<ProbeOutcome>;
}

export const passed = (reason: string): ProbeOutcome => ({ ok: true, reason });
export const failed = (reason: string): ProbeOutcome => ({ ok: false, reason });

/** Thrown by probe plumbing when licgate itself is short of a resource (see io/local-errors.ts). */
export class InconclusiveCheck extends Error {}

/** The check could not run for want of something on licgate's side: no verdict on the server. */
export const inconclusive = (reason: string): ProbeOutcome => ({ ok: false, reason, inconclusive: true });

/** A failed outcome from a caught error, keeping "inconclusive" when it was our own shortage. */
export const failedFrom = (e: unknown): ProbeOutcome => (e instanceof InconclusiveCheck ? inconclusive(e.message) : failed((e as Error).message));
