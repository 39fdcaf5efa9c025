import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';

/**
 * A port free now on every one of `hosts` (loopback addresses), for a test to hand to another
 * process (HAProxy, a `licgate run` config). Picked below the kernel's ephemeral range: a port
 * bound to 0 and released comes from that range, where any outgoing connection (a health check of
 * the test's own proxies) may take it before the other process binds it, and CI saw HAProxy fail
 * "cannot bind socket (Address already in use)" that way. Below the range only another explicit
 * pick can take it, and each pick is checked free on every host.
 */
export async function freePort(hosts: string | string[] = '127.0.0.1'): Promise<number> {
  const list = typeof hosts === 'string' ? [hosts] : hosts;
  const low = ephemeralLow();
  for (let attempt = 0; attempt < 200; attempt++) {
    // A range that starts low (a tuned host) leaves nothing below it: take one from port 0 then.
    const port = low > FIRST + 1000 ? FIRST + Math.floor(Math.random() * (low - FIRST)) : await anyPort(list[0]!);
    // Two picks of one test, not yet bound by whoever it hands them to, must differ.
    if (handedOut.has(port) || !(await freeOnAll(port, list))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error(`no port free on all of ${list.join(', ')} after 200 attempts`);
}

const handedOut = new Set<number>();

/** Below this are well-known and registered services the host may run. */
const FIRST = 10_000;

function ephemeralLow(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  } catch {
    return 32_768;
  }
}

async function anyPort(host: string): Promise<number> {
  const s = await bind(0, host);
  const port = (s!.address() as { port: number }).port;
  await close(s!);
  return port;
}

async function freeOnAll(port: number, hosts: string[]): Promise<boolean> {
  const bound: Server[] = [];
  let ok = true;
  for (const host of hosts) {
    const s = await bind(port, host);
    if (s === null) {
      ok = false;
      break;
    }
    bound.push(s);
  }
  await Promise.all(bound.map(close));
  return ok;
}

function bind(port: number, host: string): Promise<Server | null> {
  const s = createServer();
  return new Promise((resolve) => s.once('error', () => resolve(null)).listen(port, host, () => resolve(s)));
}

function close(s: Server): Promise<void> {
  return new Promise((resolve) => s.close(() => resolve()));
}
