/** Linux's initial SYN retransmission timeout (TCP_TIMEOUT_INIT, RFC 6298 §2.1). */
const SYN_RETRANSMIT_MS = 1000;

/**
 * How long connects to one server usually take, estimated as TCP estimates its round-trip time
 * (RFC 6298: SRTT and RTTVAR, gains 1/8 and 1/4) from the connects of live traffic. It sets how
 * long a connect may stay unanswered before the connector races another server: never sooner than
 * `connect_race`, and later for a server that is always slow (a DR site across an ocean), so that
 * such a server is not raced, and beaten by a nearby one, on every connection.
 */
export class ConnectTime {
  /** Smoothed connect time in ms; -1 until the first sample. */
  private srtt = -1;
  private rttvar = 0;

  sample(ms: number): void {
    // Karn's rule: a connect that took a SYN retransmit measured the retransmit timer, not the path.
    // One lost SYN would otherwise hold the race delay near 3 s until many fast connects wore it down.
    if (ms >= SYN_RETRANSMIT_MS) return;
    if (this.srtt < 0) {
      this.srtt = ms;
      this.rttvar = ms / 2;
      return;
    }
    this.rttvar += (Math.abs(this.srtt - ms) - this.rttvar) / 4;
    this.srtt += (ms - this.srtt) / 8;
  }

  /**
   * The race delay for this server: `floor`, or SRTT + 4·RTTVAR (TCP's RTO) when that is longer,
   * rounded up to 50 ms (each distinct delay gets a deadline list of its own; see deadline-list.ts).
   */
  raceDelay(floor: number): number {
    const rto = this.srtt < 0 ? 0 : this.srtt + 4 * this.rttvar;
    return rto <= floor ? floor : Math.ceil(rto / 50) * 50;
  }

  /** The smoothed connect time in ms (GET /status `connect_ms`), or null before the first connect. */
  get smoothed(): number | null {
    return this.srtt < 0 ? null : this.srtt;
  }
}
