import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Server } from '../model/server.js';
import type { Logger } from '../observe/log.js';

export type Lookup = (host: string) => Promise<string>;

export const systemLookup: Lookup = async (host) => (await dnsLookup(host)).address;

const LOOKUP_TIMEOUT_MS = 2000;

/**
 * How many of the resolver's lookups run at once. libuv runs getaddrinfo() on at most half its
 * thread pool (2 of the default 4), in the order asked, whoever asks; against a name server that
 * does not answer each holds its thread for resolv.conf's timeouts. Were the resolver's names to
 * take them all, any other lookup (the listen host a reload binds, a webhook's host) would wait
 * behind every one of them, so with three or more such threads one is kept for those. With two
 * (the default pool) both serve server names, as before: one fewer would look names up one at a
 * time, and a silent DR site's name would hold back the first address of every other server, which
 * the service needs more than a webhook. The pool's size is read as libuv reads it, from
 * UV_THREADPOOL_SIZE as the pool started: `licgate run`'s entry (src/cli/licgate.cts) sets 8 before
 * that unless the environment sets a number, so server names take three of its four lookup threads.
 */
export function lookupsAtOnce(poolSize = process.env.UV_THREADPOOL_SIZE): number {
  // As libuv's init_threads(): 4 when unset, else atoi(), 0 taken as 1, and at most 1024 (a
  // negative number, unsigned there, is over it).
  let threads = poolSize === undefined ? 4 : Number.parseInt(poolSize, 10) || 1;
  if (threads < 0 || threads > 1024) threads = 1024;
  const lookupThreads = Math.ceil(threads / 2);
  return lookupThreads > 2 ? lookupThreads - 1 : lookupThreads;
}

/**
 * Resolves server host names in the health plane, so connects and checks use an address and never
 * wait on DNS. When a name stops resolving, the last good address is kept (HAProxy's
 * `hold valid`): a DNS outage must not take down a license service whose servers are fine.
 * Until a name has resolved once its server is "DOWN (no address)" and nothing connects to it.
 */
export class AddressResolver {
  private timer: NodeJS.Timeout | null = null;
  /**
   * By host name (nameKey: in any case): the lookup not settled yet, even past the timeout, and the
   * servers waiting on it. Against a name server that does not answer, getaddrinfo() takes
   * resolv.conf's timeouts per server and search domain (often longer than the interval) on one of
   * the few threads libuv runs it on (lookupsAtOnce). So one lookup per name, whatever asks for it:
   * a new one on every round, for every backend on the same license host or for the new Server
   * objects of every reload, would queue up behind it. The resolver outlives reloads.
   */
  private readonly inFlight = new Map<string, { settled: Promise<void>; waiting: Set<Server> }>();
  /**
   * Set once start-up's lookups are done: the first address of a name found then is how the server
   * starts (no event, Daemon settles the serving tiers), one found later is a state change.
   */
  private started = false;
  /**
   * Servers a reload adds, until it commits or is refused (reloadSettled): their first address is
   * set silently too, also from an answer past the lookup bound while the reload still binds.
   */
  private readonly starting = new Set<Server>();
  private stopped = false;
  /** Lookups running, at most maxLookups; the names beyond wait their turn here, first asked first. */
  private running = 0;
  private readonly turns: (() => void)[] = [];

  constructor(
    private readonly servers: () => Iterable<Server>,
    private readonly log: Logger,
    private readonly lookup: Lookup = systemLookup,
    private readonly intervalMs = 10_000,
    private readonly maxLookups = lookupsAtOnce(),
  ) {}

  /** Resolves every name once (bounded by the lookup timeout), then keeps them fresh. */
  async start(): Promise<void> {
    await this.resolveAll();
    // A stop during start-up's lookups (Daemon gives up waiting for them) must not be undone here.
    if (this.stopped) return;
    this.started = true;
    this.timer = setInterval(() => void this.resolveAll(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.turns.length = 0;
  }

  /**
   * The names of servers a reload adds, looked up before it commits (bounded as at start-up): each
   * starts with its first address as a server does at start-up, also one that answers after the
   * timeout while the reload still binds its listeners (reloadSettled ends that). An answer after
   * the commit comes to a server already running, "DOWN (no address)", and is a state change like
   * any later one.
   */
  async resolveFirst(servers: readonly Server[]): Promise<void> {
    const named = servers.filter((s) => isIP(s.address.host) === 0);
    for (const s of named) this.starting.add(s);
    await Promise.all(named.map((s) => this.resolve(s)));
  }

  /**
   * The reload that asked resolveFirst about `servers` committed (they run now: a later answer is
   * a state change) or was refused (an answer is for no server).
   */
  reloadSettled(servers: readonly Server[]): void {
    for (const s of servers) this.starting.delete(s);
  }

  async resolveAll(): Promise<void> {
    const named = [...this.servers()].filter((s) => isIP(s.address.host) === 0);
    await Promise.all(named.map((s) => this.resolve(s)));
  }

  /**
   * Looks `s` up, or joins the lookup of its name under way; waits at most LOOKUP_TIMEOUT_MS
   * (start-up and a reload wait on this), reporting ETIMEOUT after that, but applies the answer
   * whenever it comes: with the first of two name servers not answering, glibc asks the second
   * after resolv.conf's timeout (5 s), so every answer is late.
   */
  private resolve(s: Server): Promise<void> {
    const host = s.address.host;
    let lookup = this.inFlight.get(nameKey(host));
    if (lookup?.waiting.has(s)) return Promise.resolve();
    lookup ??= this.lookUp(host);
    lookup.waiting.add(s);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        const live = s.live();
        if (this.named(nameKey(host)).has(live)) this.failed(live, host, 'ETIMEOUT');
        resolve();
      }, LOOKUP_TIMEOUT_MS);
    });
    return Promise.race([lookup.settled, timedOut]).finally(() => clearTimeout(timer));
  }

  /**
   * Starts the one lookup of `host` (in its turn); its outcome goes to every server with that
   * name. A name waiting its turn is under way too: rounds and reloads join it, and a server
   * keeps its last good address meanwhile.
   */
  private lookUp(host: string): { settled: Promise<void>; waiting: Set<Server> } {
    const key = nameKey(host);
    const waiting = new Set<Server>();
    const settled = this.turn()
      .then(() => this.lookup(host))
      .then(
        (address) => {
          this.inFlight.delete(key);
          for (const s of this.named(key)) this.resolved(s, s.address.host, address);
        },
        (e) => {
          this.inFlight.delete(key);
          const reason = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
          for (const s of this.named(key)) this.failed(s, s.address.host, reason);
        },
      )
      .finally(() => this.passTurn());
    const lookup = { settled, waiting };
    this.inFlight.set(key, lookup);
    return lookup;
  }

  /** Settles when a lookup may start: at once while fewer than maxLookups run, else in turn. */
  private turn(): Promise<void> {
    if (this.running < this.maxLookups) {
      this.running++;
      return Promise.resolve();
    }
    return new Promise((start) => this.turns.push(start));
  }

  private passTurn(): void {
    const next = this.turns.shift();
    if (next) next();
    else this.running--;
  }

  /**
   * The servers an answer about `key` is for: those with that name in the running config, and in
   * the config of a reload still waiting for its first lookups. One a reload kept while the lookup
   * was under way has been replaced by one with the same name, which takes the answer; one it
   * removed or gave another host is no server any more, and the answer is dropped unlogged.
   */
  private named(key: string): Set<Server> {
    const out = new Set<Server>();
    for (const s of this.servers()) if (nameKey(s.address.host) === key) out.add(s);
    for (const s of this.starting) if (nameKey(s.address.host) === key) out.add(s);
    return out;
  }

  private resolved(s: Server, host: string, address: string): void {
    if (address !== s.connectHost) this.log.info({ server: s.name, host, address }, `${host} resolves to ${address}`);
    else if (s.dnsError) this.log.info({ server: s.name, host, address }, `${host} resolves again (${address})`);
    s.dnsError = null;
    if (this.started && !this.starting.has(s)) s.addressFound(address, `${host} resolves to ${address}`);
    else s.connectHost = address;
  }

  private failed(s: Server, host: string, reason: string): void {
    if (s.dnsError !== reason) {
      const keep = s.connectHost !== host ? `keeping its last known address ${s.connectHost}` : 'no address known yet';
      this.log.warn({ server: s.name, host, reason }, `DNS lookup of ${host} failed (${reason}); ${keep}`);
    }
    s.dnsError = reason;
  }
}

/** DNS names are case-insensitive: LIC1 (as a FlexLM license file may name the host) and lic1 are one name, one lookup. */
function nameKey(host: string): string {
  return host.toLowerCase();
}
