import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/proxy-harness.js';

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
