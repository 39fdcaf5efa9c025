import type { Matcher } from '../../config/schema.js';
import { describeMatcher, firstLine, tcpExchange } from './tcp-exchange.js';
import { failed, failedFrom, passed, type Probe, type ProbeOutcome, type ProbeTarget } from './probe.js';

/** Send a string, expect a string or regex in the reply (HAProxy tcp-check send/expect). */
export class SendExpectProbe implements Probe {
  constructor(private readonly send: string, private readonly expect: Matcher | null, private readonly readLimit: number) {}

  async run(target: ProbeTarget, signal: AbortSignal): Promise<ProbeOutcome> {
    try {
      const ex = await tcpExchange(target, signal, this.send, this.expect, this.readLimit);
      if (ex.matched) return passed(this.expect ? `reply matched ${describeMatcher(this.expect)}` : 'sent');
      if (ex.stop === 'limit') return failed(`no match for ${describeMatcher(this.expect!)} in the first ${this.readLimit} bytes`);
      return failed(`expected ${describeMatcher(this.expect!)}, got "${firstLine(ex.reply)}"`);
    } catch (e) {
      return failedFrom(e);
    }
  }
}
