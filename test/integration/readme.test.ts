import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { oneExchange } from '../helpers/one-exchange.js';
import { runCli, startProxy, startTcpServer, stopAll } from '../helpers/proxy-harness.js';

// The README is how an admin meets licgate: a config it shows that does not validate, a flag it
// names that a command does not take, or a file or section it cites that is not there costs that
// admin an evening. Two of its configs failed or warned in validate, and two agent replies it
// quoted were not the lines a sidecar sends.
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'licgate-readme-'));
afterAll(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

/** Every ```yaml block, with the indentation of a block inside a list item taken off, and its line. */
function yamlBlocks(): { line: number; text: string }[] {
  return [...README.matchAll(/^( *)```yaml\n([\s\S]*?)^ *```$/gm)].map((m) => ({
    line: README.slice(0, m.index).split('\n').length,
    text: m[2]!.replace(new RegExp(`^${m[1]}`, 'gm'), ''),
  }));
}

/** A token file as `install -m 0640` makes it: the README's paths under /etc are not on this host. */
function tokenFile(): string {
  const f = join(dir, 'token');
  writeFileSync(f, 'readme-test-token-0123456789abcdef\n');
  chmodSync(f, 0o640);
  return f;
}

const LISTENERS = ['frontends', 'status', 'agent', 'admin'];

describe('README.md, as a new admin reads it', () => {
  it('every licgate config it shows passes licgate validate with no error and no warning (a section alone, such as peers, in the Configuration example)', async () => {
    const blocks = yamlBlocks();
    // The Prometheus scrape config is Prometheus's (metrics-alert-rules.test.ts runs it).
    const configs = blocks.filter((b) => !/^scrape_configs:/m.test(b.text));
    expect(configs.length, 'licgate configs in the README').toBeGreaterThanOrEqual(4);
    const token = tokenFile();
    const main = configs[0]!;
    const results: string[] = [];
    for (const [i, b] of configs.entries()) {
      let text = b.text.replace(/\/etc\/licgate\/[\w.-]+\.token/g, token);
      const doc = parseDocument(text);
      expect(doc.errors, `README line ${b.line}: YAML`).toEqual([]);
      const keys = Object.keys((doc.toJS() ?? {}) as object);
      if (!keys.some((k) => LISTENERS.includes(k))) {
        // A section shown alone: in place of its own in the Configuration example.
        const whole = parseDocument(main.text.replace(/\/etc\/licgate\/[\w.-]+\.token/g, token));
        for (const k of keys) whole.set(k, doc.get(k, true));
        text = String(whole);
      }
      const f = join(dir, `block-${i}.yaml`);
      writeFileSync(f, text);
      const r = await runCli(['validate', '--config', f]);
      results.push(`README line ${b.line}: exit ${r.code} ${r.stderr}`.trim());
    }
    expect(results).toEqual(configs.map((b) => `README line ${b.line}: exit 0`));
  });

  it('each command of the Commands table is one `licgate --help` lists, and takes every option the table shows for it', async () => {
    const table = /^## Commands\n([\s\S]*?)\n\n/m.exec(README)![1]!;
    const rows = [...table.matchAll(/^\| `licgate (\w+)([^`]*)` \|(.*)\|$/gm)];
    const named = rows.map((m) => m[1]!);
    const help = await runCli(['--help']);
    const listed = [...help.stdout.matchAll(/^ {2}(\w+) {2}/gm)].map((m) => m[1]!);
    expect(named.sort()).toEqual(listed.sort());
    const missing: string[] = [];
    for (const [, cmd, usage, does] of rows) {
      const own = await runCli([cmd!, '--help']);
      expect(own.code, `licgate ${cmd} --help`).toBe(0);
      const shown = new Set([...`${usage} ${does}`.matchAll(/--[a-z][a-z-]*/g)].map((m) => m[0]));
      for (const flag of shown) if (!own.stdout.includes(flag)) missing.push(`licgate ${cmd} ${flag}`);
    }
    expect(missing, 'options the table shows that the command does not list').toEqual([]);
  });

  it('every file it cites by path exists', () => {
    const cited = new Set([...README.matchAll(/`((?:bench|dist|examples|haproxy|keepalived|prometheus|src|systemd|test)\/[\w./-]+)`/g)].map((m) => m[1]!));
    expect(cited.size).toBeGreaterThanOrEqual(15);
    expect([...cited].filter((f) => !existsSync(join(ROOT, f)))).toEqual([]);
  });

  it('every section it sends the reader to (see "X") is a heading or a paragraph title', () => {
    const titles = new Set([...README.matchAll(/^#+ (.*)$/gm), ...README.matchAll(/\*\*([^*]+?)[.:]?\*\*/g)].map((m) => m[1]!.replace(/[.:]$/, '')));
    const sent = [...README.matchAll(/\bsee "([^"]+)"/g)].map((m) => m[1]!.replace(/\s+/g, ' '));
    expect(sent.length).toBeGreaterThanOrEqual(5);
    expect(sent.filter((s) => ![...titles].some((t) => t === s || t.startsWith(`${s}:`)))).toEqual([]);
  });

  it('the agent replies it quotes for a server up, drained and in maint are the lines a sidecar sends', async () => {
    const lmgrd = await startTcpServer((sock) => sock.end());
    const token = tokenFile();
    const p = await startProxy(`
admin: { listen: "127.0.0.1:0", token_file: ${token} }
agent: { listen: "127.0.0.1:0", backend: licenses }
shutdown_delay: 0s
backends:
  - name: licenses
    check: { type: tcp, inter: 5s }
    servers: [{ name: local, address: "127.0.0.1:${lmgrd.port}", weight: 100 }]
`);
    const reply = async (): Promise<string> => (await oneExchange(p.listening.agent!, '127.0.0.1', '')).got.trim();
    const set = async (state: string): Promise<void> => {
      const r = await fetch(`${p.adminUrl}/admin/backends/licenses/servers/local`, { method: 'POST', headers: { authorization: `Bearer ${readFileSync(token, 'utf8').trim()}`, 'content-type': 'application/json' }, body: JSON.stringify({ state }) });
      expect(r.status, `set state ${state}`).toBe(200);
    };
    const sent = [await reply()];
    await set('drain');
    sent.push(await reply());
    await set('maint');
    sent.push(await reply());
    expect(sent).toEqual(['up ready 100%', 'up drain 0% #draining', 'down maint 0% #maintenance']);
    const sidecar = /^## Sidecar role[\s\S]*?^The agent replies one line[\s\S]*?\n\n/m.exec(README)![0];
    expect(sent.filter((line) => !sidecar.includes(`\`${line}\``)), 'replies the README does not show as they are').toEqual([]);
  });
});
