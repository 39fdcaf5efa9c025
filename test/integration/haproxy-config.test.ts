import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { requireTools } from '../helpers/require-tools.js';
import { HAPROXY_DIR, haproxyCheck, readShipped } from './haproxy-lab.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'licgate-haproxy-cfg-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeEach((ctx) => requireTools(['haproxy'], ctx));

const SHIPPED = ['sidecar-checks.cfg', 'licgate-proxies.cfg'];

describe('haproxy/ configs', () => {
  it('ships exactly the configs this test checks', () => {
    expect(readdirSync(HAPROXY_DIR).filter((f) => f.endsWith('.cfg')).sort()).toEqual([...SHIPPED].sort());
  });

  for (const name of SHIPPED) {
    it(`${name} passes haproxy -c`, () => {
      const r = haproxyCheck(join(HAPROXY_DIR, name));
      expect(r.output).toContain('Configuration file is valid');
      expect(r.code).toBe(0);
    });

    it(`${name}: a broken copy fails haproxy -c (negative control)`, () => {
      const broken = join(dir, `broken-${name}`);
      const text = readShipped(name);
      expect(text).toContain('balance roundrobin');
      writeFileSync(broken, text.replace('balance roundrobin', 'balance roundrobinn'));
      const line = text.slice(0, text.indexOf('balance roundrobin')).split('\n').length;
      const r = haproxyCheck(broken);
      expect(r.code).not.toBe(0);
      expect(r.output).toContain(`parsing [${broken}:${line}] : balance only supports`);
    });

    it(`${name}: long idle timeouts and TCP keepalive, so idle license sessions survive`, () => {
      const text = readShipped(name);
      for (const line of ['timeout client 3h', 'timeout server 3h', 'timeout tunnel 3h', 'option clitcpka', 'option srvtcpka', 'stats socket ']) {
        expect(text, line).toContain(line);
      }
      // No production directive that cuts held licenses.
      expect(text).not.toMatch(/^\s*(?:default-server|server)\b.*on-marked-down\s+shutdown-sessions/m);
    });
  }

  it('sidecar-checks.cfg checks every server through its sidecar: STATUS tcp-check and agent-check', () => {
    const text = readShipped('sidecar-checks.cfg');
    for (const line of ['option tcp-check', 'tcp-check connect port 27100', 'tcp-check send "STATUS\\r\\n"', 'tcp-check expect string "Server Status: Running"', 'agent-check agent-port 27200 agent-inter 2s', 'balance roundrobin', ' check backup']) {
      expect(text, line).toContain(line);
    }
  });

  it('licgate-proxies.cfg checks each licgate proxy with in-band STATUS on the client port', () => {
    const text = readShipped('licgate-proxies.cfg');
    expect(text).toMatch(/^\s+tcp-check connect\n/m);
    expect(text).toContain('tcp-check send "STATUS\\r\\n"');
    expect(text).toContain('tcp-check expect string "Server Status: Running"');
  });
});
