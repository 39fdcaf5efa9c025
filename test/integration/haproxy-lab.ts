/**
 * Real HAProxy for integration tests: render a shipped config from haproxy/ onto loopback
 * addresses and test ports, check it with `haproxy -c`, run it with `haproxy -db`, and ask it
 * questions over its stats socket (`show stat`, `show servers state`) with a plain node:net client.
 *
 *   const cfg = renderConfig(readShipped('sidecar-checks.cfg'), dir, [[/bind :27000/g, 'bind 127.0.0.1:9000', 1], ...]);
 *   const hap = await startHaproxy(cfg, dir);
 *   const row = await hap.server('licenses', 'lic1');    // { status: 'UP', weight: 100, ... }
 *   await hap.stop();
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../helpers/wait-for.js';

export const HAPROXY_DIR = fileURLToPath(new URL('../../haproxy/', import.meta.url));

export function readShipped(name: string): string {
  return readFileSync(join(HAPROXY_DIR, name), 'utf8');
}

/** `haproxy -c -f FILE`: exit code and combined output. */
export function haproxyCheck(file: string): { code: number | null; output: string } {
  const r = spawnSync('haproxy', ['-c', '-f', file], { encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

export { freePort } from '../helpers/free-port.js';

/** [pattern, replacement, expected number of matches]: a replacement that matches another count fails loudly. */
export type Edit = [RegExp, string, number];

/**
 * Applies `edits` to a shipped config and swaps its `global` section for one that runs as the
 * current user in the foreground with a stats socket in `dir`. Every edit must match exactly as
 * often as stated, so a change to the shipped file cannot silently leave production values in.
 */
export function renderConfig(shipped: string, dir: string, edits: Edit[]): string {
  const global = /^global\n(?:[ \t]+.*\n|[ \t]*#.*\n)*/m;
  if (!global.test(shipped)) throw new Error('shipped config has no global section');
  let text = shipped.replace(
    global,
    `global\n    stats socket ${join(dir, 'haproxy.sock')} mode 600 level admin\n    stats timeout 30s\n    log stderr format raw local0 info\n`,
  );
  for (const [pattern, replacement, count] of edits) {
    const found = text.match(new RegExp(pattern.source, pattern.flags.includes('g') ? pattern.flags : pattern.flags + 'g'))?.length ?? 0;
    if (found !== count) throw new Error(`config edit ${pattern}: expected ${count} match(es), found ${found}`);
    text = text.replace(new RegExp(pattern.source, pattern.flags.includes('g') ? pattern.flags : pattern.flags + 'g'), replacement);
  }
  return text;
}

/** One row of `show stat` (CSV), by column name. */
export type StatRow = Record<string, string>;

export interface HaproxyProcess {
  child: ChildProcess;
  socket: string;
  configFile: string;
  output(): string;
  /** Sends one stats-socket command and returns the whole answer. */
  command(cmd: string): Promise<string>;
  stat(): Promise<StatRow[]>;
  server(backend: string, server: string): Promise<StatRow>;
  stop(): Promise<void>;
}

export async function startHaproxy(config: string, dir: string): Promise<HaproxyProcess> {
  const configFile = join(dir, 'haproxy.cfg');
  const socket = join(dir, 'haproxy.sock');
  writeFileSync(configFile, config);
  const check = haproxyCheck(configFile);
  if (check.code !== 0) throw new Error(`haproxy -c rejected the rendered config:\n${check.output}\n---\n${config}`);
  const child = spawn('haproxy', ['-db', '-f', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out = (out + d).slice(-200_000)));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out = (out + d).slice(-200_000)));
  const command = (cmd: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const sock = connect({ path: socket });
      let answer = '';
      sock.setEncoding('utf8');
      sock.setTimeout(5000, () => sock.destroy(new Error(`stats socket: no answer to "${cmd}" within 5 s`)));
      sock.on('connect', () => sock.write(`${cmd}\n`));
      sock.on('data', (d: string) => (answer += d));
      sock.on('end', () => resolve(answer));
      sock.on('error', reject);
    });
  const stat = async (): Promise<StatRow[]> => {
    const lines = (await command('show stat')).split('\n').filter(Boolean);
    const header = lines[0]?.replace(/^# /, '').split(',');
    if (!header || !header.includes('pxname')) throw new Error(`unexpected "show stat" answer: ${lines.slice(0, 3).join(' | ')}`);
    return lines.slice(1).map((l) => Object.fromEntries(l.split(',').map((v, i) => [header[i] ?? `col${i}`, v])));
  };
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  try {
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`haproxy exited with ${child.exitCode}: ${out}`);
        return (await stat()).length > 0;
      },
      { timeoutMs: 10_000, intervalMs: 50, what: `haproxy stats socket ${socket}` },
    );
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    child,
    socket,
    configFile,
    output: () => out,
    command,
    stat,
    async server(backend, server) {
      const row = (await stat()).find((r) => r.pxname === backend && r.svname === server);
      if (!row) throw new Error(`no server ${backend}/${server} in "show stat"`);
      return row;
    },
    stop,
  };
}

/**
 * One request through a TCP port from a chosen loopback source address (HAProxy's stick table keys
 * on it): send `line`, return the first line of the answer.
 */
export function askLine(port: number, line: string, from = '127.0.0.1', host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host, port, localAddress: from });
    let buf = '';
    sock.setEncoding('utf8');
    sock.setTimeout(5000, () => sock.destroy(new Error(`no answer from ${host}:${port} within 5 s`)));
    sock.on('connect', () => sock.write(line));
    sock.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        resolve(buf.slice(0, nl).replace(/\r$/, ''));
        sock.destroy();
      }
    });
    sock.on('end', () => reject(new Error(`connection closed without a line; got ${JSON.stringify(buf)}`)));
    sock.on('error', reject);
  });
}
