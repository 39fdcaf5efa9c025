import type { LicenseInfo } from '../parse/license-info.js';
import type { AgentView } from '../../model/server.js';

export interface ProbeTarget {
  host: string;
  port: number;
}

export interface ProbeOutcome {
  ok: boolean;
  /** Short, human: goes into /status, STATUS/agent replies and log lines. */
  reason: string;
  license?: LicenseInfo;
  agent?: AgentView;
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
