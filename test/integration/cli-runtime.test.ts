import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, startProxy } from '../helpers/proxy-harness.js';
import { waitFor } from '../helpers/wait-for.js';

const dir = mkdtempSync(join(tmpdir(), 'licgate-runtime-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const config = join(dir, 'licgate.yaml');
writeFileSync(
  config,
  `frontends:
  - { name: lmgrd, listen: "127.0.0.1:0", backend: licenses }
backends:
  - name: licenses
    check: { type: none }
    servers: [{ name: a, address: "127.0.0.1:9" }]
`,
);

/** A Node whose internal bindings differ from the ones the relay is built on (src/io/tcp-handle.ts). */
function preload(name: string, body: string): NodeJS.ProcessEnv {
  const file = join(dir, name);
  writeFileSync(file, body);
  return { ...process.env, NODE_OPTIONS: `--require ${file}` };
}

describe('licgate run on a Node without the TCP bindings it relays through', () => {
  it('exits 1 with a message naming what is missing, instead of misbehaving', async () => {
    const env = preload(
      'no-write-wrap.cjs',
      `const real = process.binding;
process.binding = (name) => {
  const b = real(name);
  return name === 'stream_wrap' ? { ...b, WriteWrap: undefined } : b;
};
`,
    );
    const r = await runCli(['run', '--config', config], 20_000, env);
    expect(r.stderr).toBe(`licgate: expected Node's libuv TCP bindings (tcp_wrap, stream_wrap) as Node 20.18 to 24 have them; found Node ${process.version} without stream_wrap.WriteWrap. Run licgate on Node 22 or 24 LTS.\n`);
    expect(r.code).toBe(1);
  });

  it('says so when process.binding itself is gone', async () => {
    const env = preload('no-binding.cjs', `process.binding = () => { throw new Error('No such module: tcp_wrap'); };\n`);
    const r = await runCli(['run', '--config', config], 20_000, env);
    expect(r.stderr).toContain(`found Node ${process.version}, where process.binding fails: No such module: tcp_wrap.`);
    expect(r.code).toBe(1);
  });

  it('still validates configs there: only the data plane needs the bindings', async () => {
    const env = preload('no-binding-2.cjs', `process.binding = () => { throw new Error('No such module: tcp_wrap'); };\n`);
    const r = await runCli(['validate', '--config', config], 20_000, env);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
});

describe("licgate run's libuv thread pool", () => {
  /**
   * The threads of a `licgate run` whose pool has started (its lookup of localhost answered), with
   * UV_THREADPOOL_SIZE as `size` says (undefined: not in its environment at all).
   */
  async function threadsOnceLookedUp(size: string | undefined): Promise<number> {
    // env execs licgate: its pid is licgate's.
    const env = ['env', '-u', 'UV_THREADPOOL_SIZE', ...(size === undefined ? [] : [`UV_THREADPOOL_SIZE=${size}`])];
    const p = await startProxy('frontends: []\nbackends:\n  - { name: b, check: { type: none }, servers: [{ name: a, address: "localhost:9" }] }\n', { wrapper: env, waitReady: false });
    try {
      await waitFor(() => p.logs.some((l) => String(l.msg).startsWith('localhost resolves to ')), { timeoutMs: 15_000, what: 'the lookup of localhost logged' });
      return readdirSync(`/proc/${p.child.pid}/task`).length;
    } finally {
      await p.stop();
    }
  }

  it('has 8 threads when the environment sets no UV_THREADPOOL_SIZE (or one libuv takes as 1), and as many as it sets otherwise', async () => {
    // Node's own threads are the same in every run: the differences are the pool's.
    const four = await threadsOnceLookedUp('4');
    expect(await threadsOnceLookedUp('5')).toBe(four + 1);
    expect(await threadsOnceLookedUp(undefined)).toBe(four + 4);
    expect(await threadsOnceLookedUp('')).toBe(four + 4);
  });
});
