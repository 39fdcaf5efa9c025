import type { CheckConfig } from '../../config/schema.js';
import { LicgateError } from '../../errors.js';
import { AgentProbe } from './agent.js';
import { ExecProbe, type UnexitedChecks } from './exec.js';
import { HttpProbe } from './http.js';
import type { Probe } from './probe.js';
import { SendExpectProbe } from './send-expect.js';
import { StatusProbe } from './status.js';
import { TcpProbe } from './tcp.js';

/**
 * The probe for a backend's check config; null for `type: none`. `unexited`: the backend's exec
 * check processes that outlived SIGKILL, kept by the caller across the probes a reload rebuilds.
 */
export function createProbe(check: CheckConfig, unexited?: UnexitedChecks): Probe | null {
  switch (check.type) {
    case 'none':
      return null;
    case 'tcp':
      return new TcpProbe();
    case 'status':
      return new StatusProbe(check.read_limit);
    case 'send-expect':
      return new SendExpectProbe(check.send, check.expect, check.read_limit);
    case 'exec':
      return new ExecProbe(check, unexited);
    case 'http':
      return new HttpProbe(check);
    case 'agent':
      return new AgentProbe(check.send, check.read_limit);
    default:
      throw new LicgateError('E_CHECK_TYPE', `check type "${check.type}" is not implemented yet`);
  }
}
