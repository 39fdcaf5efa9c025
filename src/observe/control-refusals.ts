import { MAX_CONTROL_PEERS } from '../io/listen.js';
import { CROWDED, LOCAL_RESERVE, MAX_PEERS_PER_ADDRESS } from '../io/peers-by-address.js';
import type { Logger } from './log.js';
import { PeerEventSummary } from './peer-event-summary.js';

/** The control listeners whose refusals are counted (licgate_control_refused_total{listener}). */
export const CONTROL_LISTENERS = ['status', 'agent', 'admin'] as const;
export type ControlListener = (typeof CONTROL_LISTENERS)[number];

/**
 * Peers a control listener closed at accept (past MAX_CONTROL_PEERS at once, the admin listener's
 * LOCAL_RESERVE for this host aside, or past an address's share once the port is crowded), and
 * the idle peers the admin listener closed to take a new one in their place: each counted, and
 * logged in summary lines (PeerEventSummary) with the refusals since the last line and the address
 * most of them came from.
 */
export class ControlRefusals {
  private readonly summary: PeerEventSummary;

  constructor(
    listener: ControlListener,
    log: Logger,
    private readonly counter: { inc(): void },
  ) {
    // The admin listener's reserve is part of its limit: a check from this host refused past it was
    // refused at 136, not at the 128 the other ports have.
    // It also closes an idle peer for a new one (PeersByAddress evictIdle): a check that failed on
    // its closed keep-alive connection has its reason here too.
    const admin = listener === 'admin';
    const reserve = admin ? `, ${LOCAL_RESERVE} more from this host (127.0.0.1, ::1, its own address)` : '';
    const evicts = admin ? '; past that, a new peer takes the place of the one idle longest' : '';
    this.summary = new PeerEventSummary(({ count: refused, top, topCount }) =>
      log.warn(
        { listener, refused, top_address: top, top_address_refused: topCount },
        `${listener} listener ${admin ? 'refused or closed' : 'refused'} ${refused} connection${refused > 1 ? 's' : ''} since the last such line, most from ${top} (${topCount}): it serves ${MAX_CONTROL_PEERS} peers at once${reserve}, and once ${CROWDED} are open, ${MAX_PEERS_PER_ADDRESS} from one address${evicts}`,
      ),
    );
  }

  readonly refused = (peer: string | undefined): void => {
    this.counter.inc();
    this.summary.note(peer);
  };

  /** Writes the refusals not logged yet (licgate is stopping). */
  close(): void {
    this.summary.close();
  }
}
