import { MAX_CONTROL_PEERS } from '../io/listen.js';
import { CROWDED, MAX_PEERS_PER_ADDRESS } from '../io/peers-by-address.js';
import type { Logger } from './log.js';

/** The control listeners whose refusals are counted (licgate_control_refused_total{listener}). */
export const CONTROL_LISTENERS = ['status', 'agent', 'admin'] as const;
export type ControlListener = (typeof CONTROL_LISTENERS)[number];

/**
 * One line at most per listener this often: a flood refuses thousands a second, but an admin whose
 * HAProxy checks of this sidecar fail must find out that licgate refused them.
 */
const REFUSAL_LOG_MS = 10_000;

/** Addresses tallied between two lines: a flood from many addresses must not grow the tally without end. */
const MAX_TALLIED = 1024;

/**
 * Peers a control listener closed at accept (past MAX_CONTROL_PEERS at once, or past an address's
 * share once the port is crowded): counted, and logged as the admin HTTP listener logs refused
 * Hosts, at the first refusal and then at most once per REFUSAL_LOG_MS, with the refusals since
 * the last line and the address most of them came from. No timer: a line is written at a refusal.
 */
export class ControlRefusals {
  private lastLine = -Infinity;
  private sinceLine = 0;
  private readonly byAddress = new Map<string, number>();

  constructor(
    private readonly listener: ControlListener,
    private readonly log: Logger,
    private readonly counter: { inc(): void },
  ) {}

  readonly refused = (peer: string | undefined): void => {
    this.counter.inc();
    this.sinceLine++;
    const addr = peer ?? 'unknown';
    const n = this.byAddress.get(addr);
    if (n !== undefined) this.byAddress.set(addr, n + 1);
    else if (this.byAddress.size < MAX_TALLIED) this.byAddress.set(addr, 1);
    const now = performance.now();
    if (now - this.lastLine < REFUSAL_LOG_MS) return;
    this.lastLine = now;
    let top = addr;
    let topCount = 0;
    for (const [a, c] of this.byAddress) if (c > topCount) [top, topCount] = [a, c];
    const refused = this.sinceLine;
    this.sinceLine = 0;
    this.byAddress.clear();
    this.log.warn(
      { listener: this.listener, refused, top_address: top, top_address_refused: topCount },
      `${this.listener} listener refused ${refused} connection${refused > 1 ? 's' : ''} since the last such line, most from ${top} (${topCount}): it serves ${MAX_CONTROL_PEERS} peers at once, and once ${CROWDED} are open, ${MAX_PEERS_PER_ADDRESS} from one address`,
    );
  };
}
