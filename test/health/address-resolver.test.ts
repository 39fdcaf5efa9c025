import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { AddressResolver, lookupsAtOnce } from '../../src/health/address-resolver.js';
import { Backend } from '../../src/model/backend.js';
import { ModelEvents } from '../../src/model/events.js';
import { waitFor } from '../helpers/wait-for.js';

let resolver: AddressResolver | null = null;
afterEach(() => {
  resolver?.stop();
  resolver = null;
});

function backend(hosts: string[]): Backend {
  const cfg = loadConfigText(`status: { listen: 127.0.0.1:0 }
backends:
  - name: licenses
    check: { type: none }
    servers:
${hosts.map((h, i) => `      - { name: s${i}, address: "${h}:${27000 + i}" }`).join('\n')}
`);
  return new Backend(cfg.backends[0]!, new ModelEvents());
}

describe('AddressResolver', () => {
  it('a name server that does not answer is asked about a name once at a time, not again on every round', async () => {
    // getaddrinfo() against a name server that does not answer takes resolv.conf's timeout times
    // its attempts per name server and search domain: 20 s to minutes, longer than the re-resolve
    // interval. Each lookup holds one of the threads libuv runs getaddrinfo() on until then.
    const asked = new Map<string, number>();
    const lookup = (host: string): Promise<string> => {
      asked.set(host, (asked.get(host) ?? 0) + 1);
      return host === 'hung.licgate.test' ? new Promise<string>(() => {}) : Promise.resolve('127.0.0.1');
    };
    const b = backend(['hung.licgate.test', 'ok.licgate.test']);
    // Two lookups at once (as with UV_THREADPOOL_SIZE=6): the hung one leaves room for the other.
    resolver = new AddressResolver(() => b.servers, pino({ level: 'silent' }), lookup, 20, 2);
    await resolver.start();
    expect(b.server('s0')!.dnsError).toBe('ETIMEOUT');
    expect(b.server('s1')!.connectHost).toBe('127.0.0.1');
    // Rounds go on for the name that answers...
    await waitFor(() => (asked.get('ok.licgate.test') ?? 0) >= 10, { timeoutMs: 5000, what: '10 rounds of lookups' });
    // ...while the hung lookup is still the one under way.
    expect(asked.get('hung.licgate.test')).toBe(1);
    expect(b.server('s0')!.dnsError).toBe('ETIMEOUT');
  });

  it('runs at most its number of lookups at once: the names beyond wait their turn, first asked first, and a name that resolved keeps its address meanwhile', async () => {
    const asked: string[] = [];
    const held = new Map<string, (address: string) => void>();
    const lookup = (host: string): Promise<string> => (asked.push(host), new Promise<string>((resolve) => held.set(host, resolve)));
    const answer = (host: string): void => {
      const r = held.get(host)!;
      held.delete(host);
      r('127.0.0.1');
    };
    const b = backend(['a.licgate.test', 'b.licgate.test', 'c.licgate.test']);
    // A long interval: the test runs the rounds.
    resolver = new AddressResolver(() => b.servers, pino({ level: 'silent' }), lookup, 60_000, 1);
    const r = resolver;
    void r.resolveAll();
    await waitFor(() => asked.length === 1, { timeoutMs: 1000, what: 'the first lookup' });
    expect(asked).toEqual(['a.licgate.test']);
    answer('a.licgate.test');
    await waitFor(() => asked.length === 2, { timeoutMs: 1000, what: 'the second lookup' });
    expect(b.server('s0')!.connectHost).toBe('127.0.0.1');

    // b hangs; a round asks for a again: it waits behind c, and keeps its address.
    void r.resolveAll();
    answer('b.licgate.test');
    await waitFor(() => asked.length === 3, { timeoutMs: 1000, what: 'the third lookup' });
    answer('c.licgate.test');
    await waitFor(() => asked.length === 4, { timeoutMs: 1000, what: 'the fourth lookup' });
    expect(asked).toEqual(['a.licgate.test', 'b.licgate.test', 'c.licgate.test', 'a.licgate.test']);
    expect(held.size).toBe(1);
    expect(b.server('s0')!.connectHost).toBe('127.0.0.1');
  });

  it('runs as many lookups as libuv runs getaddrinfo() at once (half its UV_THREADPOOL_SIZE threads) up to two, one fewer from three', () => {
    expect([undefined, '1', '2', '4', '5', '6', '8', '16', '0', 'many', '-1', '4096'].map((size) => lookupsAtOnce(size))).toEqual([2, 1, 1, 2, 2, 2, 3, 7, 1, 1, 511, 511]);
  });
});
