import { tcpExchange } from './tcp-exchange.js';
import { failedFrom, passed, type Probe, type ProbeOutcome, type ProbeTarget } from './probe.js';

/** Layer-4 check: the port accepts a connection. */
export class TcpProbe implements Probe {
  async run(target: ProbeTarget, signal: AbortSignal): Promise<ProbeOutcome> {
    try {
      await tcpExchange(target, signal, '', null, 1);
      return passed('Layer4 check passed');
    } catch (e) {
      return failedFrom(e);
    }
  }
}
