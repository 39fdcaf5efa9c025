import { failed, failedFrom, passed, type Probe, type ProbeOutcome, type ProbeTarget } from './probe.js';
import { firstLine, tcpExchange } from './tcp-exchange.js';

const RUNNING = 'Server Status: Running';
/**
 * The last line of a STATUS reply (design.md): once it has come the reply is whole, a `Standby:`
 * line included (status-reply.ts writes it before), so the check needs no close to end it.
 */
const LAST_LINE = { regex: /^Servers: [^\r\n]*\r?\n/m };
const STANDBY = /^Standby: ([^\r\n]*)/m;
const MASTER = /^(\S+) is MASTER$/;

/**
 * The STATUS protocol of design.md, as the seed HAProxy tcp-check speaks it. "Running" passes, as
 * HAProxy's `expect string Running` does; a `Standby:` line (a sidecar guarding a FlexLM triad
 * member that is not the MASTER) makes the pass a standby, which takes no client. A reply that
 * never sends its `Servers:` line is judged when the peer closes.
 */
export class StatusProbe implements Probe {
  constructor(private readonly readLimit: number) {}

  async run(target: ProbeTarget, signal: AbortSignal): Promise<ProbeOutcome> {
    try {
      const ex = await tcpExchange(target, signal, 'STATUS\r\n', LAST_LINE, this.readLimit);
      if (!ex.reply.includes(RUNNING)) {
        if (ex.stop === 'limit') return failed(`no match for "${RUNNING}" in the first ${this.readLimit} bytes`);
        return failed(`expected "${RUNNING}", got "${firstLine(ex.reply)}"`);
      }
      const standby = STANDBY.exec(ex.reply)?.[1]?.trim();
      if (standby === undefined) return passed(`reply matched "${RUNNING}"`);
      const master = MASTER.exec(standby)?.[1];
      return { ok: true, standby: true, ...(master !== undefined ? { master } : {}), reason: `triad standby: ${standby} (STATUS)` };
    } catch (e) {
      return failedFrom(e);
    }
  }
}
