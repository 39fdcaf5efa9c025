import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { ProbeOutcome } from '../../../src/health/probes/probe.js';
import { requireTools } from '../../helpers/require-tools.js';

const dist = (p: string): string => fileURLToPath(new URL(`../../../dist/${p}`, import.meta.url));

// Runs in a child limited to 64 descriptors: after one agent check with descriptors to spare, it
// opens /dev/null until EMFILE and runs one check of each type against a live listener.
const CHILD = `
import { openSync } from 'node:fs';
import { createServer } from 'node:net';
const { TcpProbe } = await import(${JSON.stringify(dist('health/probes/tcp.js'))});
const { AgentProbe } = await import(${JSON.stringify(dist('health/probes/agent.js'))});
const { ExecProbe } = await import(${JSON.stringify(dist('health/probes/exec.js'))});
const { HttpProbe } = await import(${JSON.stringify(dist('health/probes/http.js'))});
const srv = createServer((s) => s.end('up 100%\\n'));
await new Promise((r) => srv.listen(0, '127.0.0.1', r));
const target = { host: '127.0.0.1', port: srv.address().port };
const run = async (p) => { const c = new AbortController(); const t = setTimeout(() => c.abort(), 2000); try { return await p.run(target, c.signal); } finally { clearTimeout(t); } };
const before = await run(new AgentProbe('', 1024));
const fds = [];
for (;;) { try { fds.push(openSync('/dev/null', 'r')); } catch (e) { if (e.code === 'EMFILE') break; throw e; } }
const out = {
  before,
  tcp: await run(new TcpProbe()),
  agent: await run(new AgentProbe('', 1024)),
  http: await run(new HttpProbe({ path: '/', expect_status: [200], expect: null, read_limit: 1024 })),
  exec: await run(new ExecProbe({ argv: ['true'], exit_code: 0, expect: null, parse: null, timeout: 2000, read_limit: 1024 })),
};
process.stdout.write(JSON.stringify(out));
process.exit(0);
`;

describe("checks while licgate is out of descriptors", () => {
  it('every check type reports its own EMFILE as inconclusive, so no server is marked down for it', (ctx) => {
    requireTools(['prlimit'], ctx);
    const r = spawnSync('prlimit', ['--nofile=64:64', process.execPath, '--input-type=module', '-e', CHILD], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as Record<'before' | 'tcp' | 'agent' | 'http' | 'exec', ProbeOutcome>;
    expect(out.before.ok, out.before.reason).toBe(true);
    for (const type of ['tcp', 'agent', 'http', 'exec'] as const) {
      expect(out[type], `check type ${type}: ${out[type].reason}`).toMatchObject({ ok: false, inconclusive: true });
      expect(out[type].reason, type).toContain('EMFILE');
    }
  });
});
