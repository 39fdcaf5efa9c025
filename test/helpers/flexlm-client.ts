/**
 * A FlexLM-like client for the simulator's FlexLM mode (src/simulator/flexlm-simulator.ts), doing what
 * a real FlexLM client does through a load balancer:
 *
 *   1. connect to lmgrd on the VIP, send a line, read `VENDOR <port> <ticket>`, close;
 *   2. connect to <port> on the same VIP, `CHECKOUT <feature> 1 <ticket>` → GRANTED | DENIED.
 *
 * Both connections leave from `localAddress` (127.0.0.x), so one test process acts as many client
 * hosts. The grant's handle names the server that granted it (`<server>-<n>`).
 */
import { LicenseClient } from './license-client.js';

export interface FlexlmCheckoutOptions {
  /** The address the client was configured with: the proxy (VIP). */
  host: string;
  lmgrdPort: number;
  localAddress: string;
  feature?: string;
  timeoutMs?: number;
}

export interface FlexlmCheckout {
  client: string;
  vendorPort: number;
  granted: boolean;
  /** GRANTED's handle, or DENIED's reason. */
  detail: string;
  /** The server that granted the license; null when denied. */
  server: string | null;
}

export interface FlexlmSession extends FlexlmCheckout {
  /** The vendor-daemon connection, still open: the license is held until it closes. */
  vendor: LicenseClient;
}

/** What lmgrd told the client: the vendor daemon's port and the ticket its checkout must show. */
export interface LmgrdReply {
  vendorPort: number;
  ticket: string;
}

/** Step 1 alone: ask lmgrd, close. A test can change the proxy's world before step 2 (vendorCheckout). */
export async function askLmgrd(opts: FlexlmCheckoutOptions): Promise<LmgrdReply> {
  const lmgrd = await LicenseClient.connect(opts.lmgrdPort, connOptions(opts));
  let reply: string;
  try {
    reply = await lmgrd.request('HELLO');
    await lmgrd.close();
  } finally {
    lmgrd.destroy();
  }
  const m = /^VENDOR (\d+) (\S+)$/.exec(reply);
  if (!m) throw new Error(`${opts.localAddress}: expected "VENDOR <port> <ticket>" from lmgrd, got ${JSON.stringify(reply)}`);
  return { vendorPort: Number(m[1]), ticket: m[2]! };
}

/** Step 2 alone: the checkout on the vendor port lmgrd named, leaving the vendor connection open. */
export async function vendorCheckout(opts: FlexlmCheckoutOptions, lmgrd: LmgrdReply): Promise<FlexlmSession> {
  const vendor = await LicenseClient.connect(lmgrd.vendorPort, connOptions(opts));
  try {
    const answer = await vendor.request(`CHECKOUT ${opts.feature ?? 'solver'} 1 ${lmgrd.ticket}`);
    const g = /^(GRANTED|DENIED) (.+)$/.exec(answer);
    if (!g) throw new Error(`${opts.localAddress}: expected GRANTED or DENIED from the vendor daemon, got ${JSON.stringify(answer)}`);
    const granted = g[1] === 'GRANTED';
    return { client: opts.localAddress, vendorPort: lmgrd.vendorPort, granted, detail: g[2]!, server: granted ? g[2]!.replace(/-\d+$/, '') : null, vendor };
  } catch (e) {
    vendor.destroy();
    throw e;
  }
}

/** Both steps, leaving the vendor connection open (the caller closes `vendor`). */
export async function flexlmSession(opts: FlexlmCheckoutOptions): Promise<FlexlmSession> {
  return vendorCheckout(opts, await askLmgrd(opts));
}

function connOptions(opts: FlexlmCheckoutOptions): { host: string; localAddress: string; timeoutMs: number } {
  return { host: opts.host, localAddress: opts.localAddress, timeoutMs: opts.timeoutMs ?? 5000 };
}

/** One two-step checkout; the vendor connection is closed afterwards (the license is returned). */
export async function flexlmCheckout(opts: FlexlmCheckoutOptions): Promise<FlexlmCheckout> {
  const { vendor, ...result } = await flexlmSession(opts);
  try {
    await vendor.close();
  } finally {
    vendor.destroy();
  }
  return result;
}

/** The client host addresses the tests use: 127.0.0.2 … 127.0.0.(1+n), at most 127.0.0.40. */
export function clientAddresses(n: number, first = 2): string[] {
  if (first < 2 || first + n - 1 > 40) throw new RangeError(`client addresses 127.0.0.${first}..${first + n - 1} are outside 127.0.0.2-40`);
  return Array.from({ length: n }, (_, i) => `127.0.0.${first + i}`);
}
