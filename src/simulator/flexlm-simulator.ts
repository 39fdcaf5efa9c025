import { randomBytes } from 'node:crypto';
import type { AddressInfo, Server as NetServer } from 'node:net';
import { LicenseSimulator, listenOn, type Held, type SimulatorOptions } from './license-simulator.js';

/**
 * A FlexLM-like simulated license server: two ports, like `lmgrd` and its vendor daemon, so tests
 * and the demo can prove that a proxy sends a client's two connections to the same server.
 *
 * lmgrd port (`listen`), one reply line per request line:
 *   STATUS                           → the plain simulator's status block, then close
 *   any other line (e.g. HELLO)      → VENDOR <vendor-port> <ticket>
 * The ticket is random and remembered by this server instance only (a restarted server forgets
 * them). Real lmgrd sends the vendor daemon's port inside a checksummed packet that a proxy cannot
 * rewrite; the client then connects to that port on the same address it used for lmgrd — the VIP.
 *
 * vendor port (`vendorPort`, same host), the plain simulator's protocol except:
 *   CHECKOUT <feature> <count> <ticket> → GRANTED <handle> for a ticket this server issued,
 *                                         else DENIED unknown ticket
 * HELLO, CHECKIN and STATUS as in the plain simulator. Tokens are released when the vendor
 * connection closes, as a FlexLM vendor daemon frees a client's licenses when its connection drops.
 *
 * At most MAX_TICKETS tickets are remembered (oldest forgotten first), so a client that asks lmgrd
 * again and again cannot grow memory without bound.
 */
export interface FlexlmSimulatorOptions extends SimulatorOptions {
  /** Vendor-daemon port on the `listen` host; 0 picks one (the VENDOR line names the bound port). */
  vendorPort: number;
}

const MAX_TICKETS = 10_000;

export class FlexlmSimulator extends LicenseSimulator {
  private readonly vendor: NetServer;
  private readonly tickets = new Set<string>();

  constructor(override readonly opts: FlexlmSimulatorOptions) {
    super(opts);
    this.vendor = this.lineServer((line, held) => this.answer(line, held));
  }

  /** Listens on the lmgrd port, then the vendor port; resolves with the lmgrd address. */
  override async listen(): Promise<AddressInfo> {
    const lmgrd = await super.listen();
    try {
      await listenOn(this.vendor, { host: this.opts.listen.host, port: this.opts.vendorPort });
    } catch (e) {
      await super.close();
      throw e;
    }
    return lmgrd;
  }

  vendorAddress(): AddressInfo {
    return this.vendor.address() as AddressInfo;
  }

  override async close(): Promise<void> {
    await super.close();
    await new Promise<void>((resolve) => (this.vendor.listening ? this.vendor.close(() => resolve()) : resolve()));
  }

  /** The lmgrd port: every line but STATUS is answered with the vendor daemon's port and a ticket. */
  protected override answerOnListen(line: string): string {
    if (line.split(/\s+/)[0]!.toUpperCase() === 'STATUS') return 'STATUS';
    const ticket = randomBytes(8).toString('hex');
    this.tickets.add(ticket);
    if (this.tickets.size > MAX_TICKETS) this.tickets.delete(this.tickets.values().next().value!);
    return `VENDOR ${this.vendorAddress().port} ${ticket}`;
  }

  /** CHECKOUT <feature> <count> <ticket>: only a client that came through this server's lmgrd. */
  protected override checkout(args: readonly string[], held: Held): string {
    const [feature, count, ticket] = args;
    if (!feature || count === undefined || ticket === undefined) return 'DENIED usage: CHECKOUT <feature> <count> <ticket>';
    if (!this.tickets.has(ticket)) return 'DENIED unknown ticket';
    return super.checkout([feature, count], held);
  }
}
