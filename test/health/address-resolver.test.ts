import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { AddressResolver } from '../../src/health/address-resolver.js';
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
    // interval. Each lookup holds one of libuv's four threads (the log writer's too) until then.
    const asked = new Map<string, number>();
    const lookup = (host: string): Promise<string> => {
      asked.set(host, (asked.get(host) ?? 0) + 1);
      return host === 'hung.licgate.test' ? new Promise<string>(() => {}) : Promise.resolve('127.0.0.1');
    };
    const b = backend(['hung.licgate.test', 'ok.licgate.test']);
    resolver = new AddressResolver(() => b.servers, pino({ level: 'silent' }), lookup, 20);
    await resolver.start();
    expect(b.server('s0')!.dnsError).toBe('ETIMEOUT');
    expect(b.server('s1')!.connectHost).toBe('127.0.0.1');
    // Rounds go on for the name that answers...
    await waitFor(() => (asked.get('ok.licgate.test') ?? 0) >= 10, { timeoutMs: 5000, what: '10 rounds of lookups' });
    // ...while the hung lookup is still the one under way.
    expect(asked.get('hung.licgate.test')).toBe(1);
    expect(b.server('s0')!.dnsError).toBe('ETIMEOUT');
  });
});
