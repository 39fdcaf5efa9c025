import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/proxy-harness.js';

const dir = mkdtempSync(join(tmpdir(), 'licgate-validate-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

describe('licgate validate --config', () => {
  it('exits 0 and summarises a valid file', async () => {
    const f = file('ok.yaml', `frontends:
  - { name: lmgrd, listen: "127.0.0.1:27000", backend: licenses }
backends:
  - name: licenses
    check: { type: status, inter: 2s, fastinter: 500ms, downinter: 5m }
    servers:
      - { name: primary, address: "10.0.0.11:27000", weight: 100 }
      - { name: backup, address: "10.0.0.12:27000", weight: 50, backup: true }
`);
    const r = await runCli(['validate', '--config', f]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`${f}: valid — proxy (1 frontend), 1 backend, 2 servers\n`);
    expect(r.code).toBe(0);
  });

  it('exits 0 on a file with warnings, printing each as FILE:LINE:COL: warning: message on stderr', async () => {
    const f = file('warn.yaml', `frontends:
  - { name: lmgrd, listen: "127.0.0.1:27000", backend: licenses, idle_timeout: 1800 }
backends:
  - name: licenses
    servers: [{ name: primary, address: "10.0.0.11:27000" }]
  - name: spare
    servers: [{ name: primary, address: "10.0.0.12:27000" }]
`);
    const r = await runCli(['validate', '--config', f]);
    expect(r.stderr.split('\n')).toEqual([
      `${f}:2:80: warning: frontend "lmgrd".idle_timeout: 1800 has no unit, so it is read as 1800ms; write 1800ms to keep that, or 1800s for seconds`,
      `${f}:2:80: warning: frontend "lmgrd".idle_timeout: 1800ms cuts license sessions that are silent between heartbeats (FlexLM about 2 minutes, DSLS up to about 17), and their clients check out again; set 30m or more, or leave it off`,
      `${f}:6:11: warning: backend "spare": no frontend, status or agent uses it, yet its servers are checked and its "no usable server" is logged and notified; name it in a frontend's "backend" or remove it`,
      '',
    ]);
    expect(r.stdout).toBe(`${f}: valid — proxy (1 frontend), 2 backends, 2 servers (3 warnings)\n`);
    expect(r.code).toBe(0);
  });

  it('exits 2 with every error as FILE:LINE:COL: message on stderr, one per line, in file order', async () => {
    const f = file('bad.yaml', `admin:
  listen: 0.0.0.0:8404
frontends:
  - name: lmgrd
    listen: "10.0.0.1"
    backend: licence
backends:
  - name: licenses
    retries: two
    check: { type: status, inter: 5 minutes }
    servers:
      - { name: primary, address: "10.0.0.11:27000", weight: 257 }
      - { name: primary, address: "10.0.0.12:27000" }
      - { name: dr, adress: "10.9.0.11:27000" }
`);
    const r = await runCli(['validate', '--config', f]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.split('\n')).toEqual([
      `${f}:2:11: admin.listen: 0.0.0.0:8404 is reachable from other hosts; set admin.token_file, or listen on 127.0.0.1`,
      `${f}:5:13: frontend "lmgrd".listen: expected host:port (e.g. 10.0.0.11:27000 or [::1]:27000), found "10.0.0.1"`,
      `${f}:6:14: frontend "lmgrd": unknown backend "licence" (did you mean "licenses"?); backends: licenses`,
      `${f}:9:14: backend "licenses".retries: expected a whole number 0-16, found "two"`,
      `${f}:10:35: backend "licenses".check.inter: expected a duration like 500ms, 2s, 5m or 8h, found "5 minutes"`,
      `${f}:12:62: server "primary".weight: expected a whole number 0-256, found 257`,
      `${f}:13:17: backend "licenses": duplicate server name "primary"`,
      `${f}:14:9: server "dr": missing required key "address"`,
      `${f}:14:21: backend "licenses".servers[2]: unknown key "adress" (did you mean "address"?); expected one of name, address, weight, backup, tier, maxconn, init_state`,
      '',
    ]);
  });

  it('exits 2 with the warnings found alongside the errors, all in file order as gcc and tsc print them', async () => {
    const f = file('bad-and-warn.yaml', `frontends:
  - { name: lmgrd, listen: "127.0.0.1:27000", backend: licence, idle_timeout: 1800 }
backends:
  - name: licenses
    retries: two
    servers: [{ name: primary, address: "10.0.0.11:27000" }]
`);
    const r = await runCli(['validate', '--config', f]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.split('\n')).toEqual([
      `${f}:2:56: frontend "lmgrd": unknown backend "licence" (did you mean "licenses"?); backends: licenses`,
      `${f}:2:79: warning: frontend "lmgrd".idle_timeout: 1800 has no unit, so it is read as 1800ms; write 1800ms to keep that, or 1800s for seconds`,
      `${f}:2:79: warning: frontend "lmgrd".idle_timeout: 1800ms cuts license sessions that are silent between heartbeats (FlexLM about 2 minutes, DSLS up to about 17), and their clients check out again; set 30m or more, or leave it off`,
      `${f}:5:14: backend "licenses".retries: expected a whole number 0-16, found "two"`,
      '',
    ]);
  });

  it('exits 2 on an init_state no check would ever move, saying why', async () => {
    const f = file('init-state.yaml', 'status: { listen: "127.0.0.1:27100" }\nbackends:\n  - name: b\n    check: { type: none }\n    servers: [{ name: a, address: "10.0.0.1:1", init_state: fully-down }]\n');
    const r = await runCli(['validate', '--config', f]);
    expect(r.stderr).toBe(`${f}:5:61: server "a".init_state: fully-down needs a health check to move it, but the backend's check type is none; remove init_state or set a check\n`);
    expect(r.code).toBe(2);
  });

  it('exits 2 on a YAML syntax error, positioned', async () => {
    const f = file('syntax.yaml', 'status: { listen: "127.0.0.1:27100" }\nbackends:\n  - name: b\n\t servers: []\n');
    const r = await runCli(['validate', '--config', f]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`${f}:4:1: YAML syntax: Tabs are not allowed as indentation\n`);
  });

  it('exits 2 on a file that is not UTF-8, naming the first byte that is not, or the UTF-16 it is', async () => {
    const latin1 = join(dir, 'latin1.yaml');
    // "é" in Latin-1 (0xE9) in an exec check's path: read leniently, the path would silently differ.
    writeFileSync(latin1, Buffer.from('status: { listen: "127.0.0.1:27100" }\nbackends:\n  - name: b\n    check: { type: exec, argv: [/opt/flexlm/r\xe9seau/lmutil, lmstat] }\n    servers: [{ name: a, address: "10.0.0.1:1" }]\n', 'latin1'));
    const a = await runCli(['validate', '--config', latin1]);
    expect(a.stderr).toBe(`${latin1}:4:46: expected a UTF-8 file, found byte 0xE9, which is not UTF-8 here (Latin-1?); save it as UTF-8\n`);
    expect(a.code).toBe(2);
    const utf16 = join(dir, 'utf16.yaml');
    writeFileSync(utf16, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('status: { listen: "127.0.0.1:27100" }\n', 'utf16le')]));
    const b = await runCli(['validate', '--config', utf16]);
    expect(b.stderr).toBe(`${utf16}:1:1: expected a UTF-8 file, found UTF-16 (byte order mark FFFE); save it as UTF-8\n`);
    expect(b.code).toBe(2);
  });

  it('counts columns on line 1 of a file with a UTF-8 byte order mark from the first character after it', async () => {
    const f = join(dir, 'bom.yaml');
    writeFileSync(f, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('log: { levle: debug }\nstatus: { listen: "127.0.0.1:27100" }\nbackends: [{ name: b, servers: [{ name: a, address: "10.0.0.1:1" }] }]\n')]));
    const r = await runCli(['validate', '--config', f]);
    expect(r.stderr).toBe(`${f}:1:8: log: unknown key "levle" (did you mean "level"?); expected one of level, format\n`);
    expect(r.code).toBe(2);
  });

  it('exits 2 when the file cannot be read', async () => {
    const f = join(dir, 'missing.yaml');
    const r = await runCli(['validate', '--config', f]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`${f}:1:1: cannot read config: ENOENT: no such file or directory, open '${f}'\n`);
  });

  it('exits 2 naming a token_file that is a FIFO, without waiting for a writer', async () => {
    // A read of a FIFO waits for a writer: at a reload that froze the daemon, relay and all.
    const fifo = join(dir, 'token.fifo');
    execFileSync('mkfifo', [fifo]);
    const f = file('fifo-token.yaml', `admin:\n  listen: 127.0.0.1:8404\n  token_file: ${fifo}\n`);
    const r = await runCli(['validate', '--config', f], 10_000);
    expect(r.stderr).toBe(`${f}:3:15: admin.token_file: expected a regular file at ${fifo}, found a FIFO\n`);
    expect(r.code).toBe(2);
  });

  it('exits 2 on a config path that is a FIFO or a device, without waiting for a writer or reading on', async () => {
    // A reload reads the file synchronously: a FIFO there froze the daemon, relay and all.
    const fifo = join(dir, 'config.fifo');
    execFileSync('mkfifo', [fifo]);
    const r = await runCli(['validate', '--config', fifo], 10_000);
    expect([r.code, r.stderr]).toEqual([2, `${fifo}:1:1: cannot read config: expected a regular file, found a FIFO\n`]);
    const zero = await runCli(['validate', '--config', '/dev/zero'], 10_000);
    expect([zero.code, zero.stderr]).toEqual([2, '/dev/zero:1:1: cannot read config: expected a regular file, found a device\n']);
  });

  it('exits 2 with usage when --config is missing or an option is unknown', async () => {
    const a = await runCli(['validate']);
    expect(a.code).toBe(2);
    expect(a.stderr).toBe('licgate validate: missing --config FILE\nusage: licgate validate --config FILE\n');
    const b = await runCli(['validate', '--config', join(dir, 'x.yaml'), '--bogus']);
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/^licgate validate: Unknown option '--bogus'/);
  });

  it('exits 2 on listeners that licgate run could not bind together (IPv4 and IPv6 wildcards on one port)', async () => {
    const f = file('overlap.yaml', `frontends:
  - { name: lmgrd4, listen: "0.0.0.0:27000", backend: licenses }
  - { name: lmgrd6, listen: "[::]:27000", backend: licenses }
backends:
  - name: licenses
    servers: [{ name: a, address: "10.0.0.11:27000" }]
`);
    const r = await runCli(['validate', '--config', f]);
    expect(r.stderr).toBe(`${f}:3:29: frontend "lmgrd6": listen address [::]:27000 overlaps 0.0.0.0:27000 of frontend "lmgrd4" ([::] takes IPv4 too); one of them is enough\n`);
    expect(r.code).toBe(2);
  });

  it('licgate run refuses the same file with the same lines and exit 2, starting nothing', async () => {
    const f = file('bad-run.yaml', 'frontends:\n  - { name: lmgrd, listen: "127.0.0.1:0", backend: nope }\nbackends:\n  - { name: licenses, servers: [{ name: a, address: "127.0.0.1:1", weight: 300 }] }\n');
    const r = await runCli(['run', '--config', f]);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')).toEqual([
      `${f}:2:52: frontend "lmgrd": unknown backend "nope"; backends: licenses`,
      `${f}:4:76: server "a".weight: expected a whole number 0-256, found 300`,
      '',
    ]);
  });
});
