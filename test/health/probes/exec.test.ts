import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { loadConfigFile, loadConfigText } from '../../../src/config/load.js';
import { Daemon } from '../../../src/daemon.js';
import { ExecProbe, expandArgv, type ExecCheck } from '../../../src/health/probes/exec.js';
import type { ProbeOutcome, ProbeTarget } from '../../../src/health/probes/probe.js';
import { CheckScheduler } from '../../../src/health/scheduler.js';
import { Backend } from '../../../src/model/backend.js';
import { ModelEvents } from '../../../src/model/events.js';
import { APP3_LICENSE, HOST3_CANNOT_CONNECT, lmstatFixturePath, SERVER_DOWN_LICENSE } from '../../helpers/lmstat-fixtures.js';
import { holdExit } from '../../helpers/exit-hold.js';
import { processGroupGone, processState } from '../../helpers/process-group.js';
import { requireTools } from '../../helpers/require-tools.js';
import { holdsFor, waitFor } from '../../helpers/wait-for.js';

const scratch = mkdtempSync(join(tmpdir(), 'licgate-exec-probe-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

// shared/ is a sibling of the repo, both locally and in CI.
const lmstatFixture = lmstatFixturePath;
const dslsFixture = (name: string): string => fileURLToPath(new URL(`../../fixtures/dsls/${name}`, import.meta.url));

/** Single-quoted for sh, whatever the path holds. */
const q = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;

/** An executable `#!/bin/sh` script in the scratch dir; the tests' stand-in for lmutil and DSLicSrv. */
function script(name: string, body: string): string {
  const path = join(scratch, name);
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  // rename: never exec a half-written file (ETXTBSY)
  renameSync(tmp, path);
  return path;
}

/** A fake `lmutil` that prints a capture, like `lmutil lmstat -a -c 27000@host` would. */
const fakeLmutil = (name: string, fixture: string, extra = ''): string => script(name, `cat ${q(fixture)}${extra ? `\n${extra}` : ''}`);

function probe(check: Partial<ExecCheck> & Pick<ExecCheck, 'argv'>): ExecProbe {
  return new ExecProbe({ env: {}, exit_code: 0, expect: null, parse: null, timeout: 10_000, read_limit: 1024 * 1024, ...check });
}

const at = (host: string, port = 27000): ProbeTarget => ({ host, port });

/** Runs a check the way the scheduler does: aborted at the check timeout. */
function check(p: ExecProbe, target: ProbeTarget, timeoutMs = 10_000): Promise<ProbeOutcome> {
  return p.run(target, AbortSignal.timeout(timeoutMs));
}

describe('exec probe with parse: lmstat', () => {
  it('is healthy on a triad capture and returns the parsed license, every feature exact', async () => {
    const lmutil = fakeLmutil('lmutil-app3', lmstatFixture('lmstat_app3.txt'));
    const out = await check(probe({ argv: [lmutil, 'lmstat', '-a', '-c', '1999@{host}'], parse: 'lmstat' }), at('host1', 1999));
    expect(out).toEqual({
      ok: true,
      reason: 'lmgrd UP (MASTER) [3/3 servers UP], vendors daemon1, DAEMON2 UP, 46 features',
      license: APP3_LICENSE,
    });
  });

  it('is unhealthy when the local member (host3) cannot be reached, with lmstat\'s reason, and still shows the license', async () => {
    const lmutil = fakeLmutil('lmutil-down', lmstatFixture('lmstat_server_down.txt'));
    const out = await check(probe({ argv: [lmutil, 'lmstat', '-a', '-c', '28000@{host}'], parse: 'lmstat' }), at('host3', 28000));
    expect(out.ok).toBe(false);
    expect(out.reason).toBe(`lmgrd on host3 DOWN: ${HOST3_CANNOT_CONNECT}`);
    expect(out.license).toEqual(SERVER_DOWN_LICENSE);
  });

  it('is a healthy standby for a member that is UP but not MASTER while a peer is down (host1 in the same capture)', async () => {
    const lmutil = fakeLmutil('lmutil-down', lmstatFixture('lmstat_server_down.txt'));
    const out = await check(probe({ argv: [lmutil], parse: 'lmstat' }), at('HOST1.example.org'));
    expect(out).toMatchObject({ ok: true, standby: true, master: 'host2', reason: 'triad standby: host2 is MASTER [2/3 servers UP]' });
  });

  it('judges the text, not the exit code: exit 1 with a healthy capture is healthy', async () => {
    const lmutil = fakeLmutil('lmutil-exit1', lmstatFixture('lmstat_app3.txt'), 'exit 1');
    const out = await check(probe({ argv: [lmutil], parse: 'lmstat' }), at('host1'));
    expect(out).toMatchObject({ ok: true, reason: 'lmgrd UP (MASTER) [3/3 servers UP], vendors daemon1, DAEMON2 UP, 46 features' });
  });

  it('with a loopback server address, finds this machine by its hostname in the server list', async () => {
    const me = hostname();
    const text = readFileSync(lmstatFixture('lmstat_server_down.txt'), 'utf8');
    const upCopy = join(scratch, 'me-up.txt');
    const downCopy = join(scratch, 'me-down.txt');
    writeFileSync(upCopy, text.replaceAll('host2', me));
    writeFileSync(downCopy, text.replaceAll('host3', me));
    const up = await check(probe({ argv: [fakeLmutil('lmutil-me-up', upCopy), 'lmstat', '-c', '{port}@localhost'], parse: 'lmstat' }), at('127.0.0.1'));
    expect(up).toMatchObject({ ok: true, reason: 'lmgrd UP (MASTER) [2/3 servers UP], vendor daemon UP, 2 features' });
    const down = await check(probe({ argv: [fakeLmutil('lmutil-me-down', downCopy)], parse: 'lmstat' }), at('localhost'));
    expect(down).toMatchObject({ ok: false, reason: `lmgrd on ${me} DOWN: ${HOST3_CANNOT_CONNECT}` });
  });

  it('on a one-server capture, judges the server it asked although lmstat prints the license file\'s name for it', async () => {
    // lmstat prints the SERVER line's host name, not the -c address: `lmutil lmstat -c 4100@l-server01 -a`
    // printed "License server status: 4100@license-server01" (flexlm_exporter issue #80, lmutil v11.19.0).
    const capture = join(scratch, 'renamed-single.txt');
    writeFileSync(
      capture,
      [
        'lmutil - Copyright (c) 1989-2018 Flexera. All Rights Reserved.',
        'Flexible License Manager status on Mon 10/2/2023 18:32',
        '',
        'License server status: 4100@license-server01',
        '    License file(s) on license-server01: C:\\Magicdraw_license_manager\\license.lic:',
        '',
        'license-server01: license server UP (MASTER) v11.19.0',
        '',
        'Vendor daemon status (on license-server01):',
        '',
        '     cameo: UP v11.19.0',
        'Feature usage info:',
        '',
        'Users of CC888888Connections:  (Total of 2 licenses issued;  Total of 2 licenses in use)',
        '',
      ].join('\n'),
    );
    const lmutil = fakeLmutil('lmutil-renamed', capture);
    const healthy = { ok: true, reason: 'lmgrd UP (MASTER), vendor cameo UP, 1 feature' };
    // Declared by the name the admin uses, and by address (a TEST-NET address: never this machine's).
    expect(await check(probe({ argv: [lmutil, 'lmstat', '-c', '{port}@{host}', '-a'], parse: 'lmstat' }), at('l-server01', 4100))).toMatchObject(healthy);
    expect(await check(probe({ argv: [lmutil, 'lmstat', '-c', '{port}@{host}', '-a'], parse: 'lmstat' }), at('192.0.2.41', 4100))).toMatchObject(healthy);
  });

  it('with several license servers in one output (-c port@a:port@b), judges each server by its own vendor daemons', async () => {
    // lmstat prints one "License server status:" block per entry of the license path, each with its own
    // "Vendor daemon status (on HOST):"; the same vendor name on two servers is two daemons.
    const block = (host: string, mlm: string): string[] => [
      `License server status: 27000@${host}`,
      `    License file(s) on ${host}: /opt/matlab/etc/license.dat:`,
      '',
      `${host}: license server UP (MASTER) v11.19.2`,
      '',
      `Vendor daemon status (on ${host}):`,
      '',
      `       MLM: ${mlm}`,
      'Feature usage info:',
      '',
      'Users of MATLAB:  (Total of 12 licenses issued;  Total of 3 licenses in use)',
      '',
    ];
    const capture = join(scratch, 'two-servers.txt');
    const head = ['lmutil - Copyright (c) 1989-2023 Flexera. All Rights Reserved.', 'Flexible License Manager status on Mon 3/4/2024 10:00', ''];
    writeFileSync(capture, [...head, ...block('lic1', 'UP v11.19.2'), ...block('lic2', 'The desired vendor daemon is down. (-97,121)')].join('\n'));
    const lmutil = fakeLmutil('lmutil-two-servers', capture);
    const lic1 = await check(probe({ argv: [lmutil, 'lmstat', '-a', '-c', '27000@lic1:27000@lic2'], parse: 'lmstat' }), at('lic1'));
    expect(lic1).toMatchObject({ ok: true, reason: 'lmgrd UP (MASTER) [2/2 servers UP], vendor MLM UP, 1 feature' });
    expect(lic1.license?.vendors).toEqual([
      { name: 'MLM', up: true, version: '11.19.2', server: 'lic1' },
      { name: 'MLM', up: false, server: 'lic2' },
    ]);
    const lic2 = await check(probe({ argv: [lmutil], parse: 'lmstat' }), at('lic2'));
    expect(lic2).toMatchObject({ ok: false, reason: 'vendor daemon MLM DOWN' });
    // And the other way round: a daemon down on the first server is not hidden by the second one's.
    writeFileSync(capture, [...head, ...block('lic1', 'DOWN'), ...block('lic2', 'UP v11.19.2')].join('\n'));
    expect(await check(probe({ argv: [lmutil], parse: 'lmstat' }), at('lic1'))).toMatchObject({ ok: false, reason: 'vendor daemon MLM DOWN' });
    expect(await check(probe({ argv: [lmutil], parse: 'lmstat' }), at('lic2'))).toMatchObject({ ok: true });
  });

  it('with a loopback address and a triad that does not name this machine, fails and says why', async () => {
    const lmutil = fakeLmutil('lmutil-app3', lmstatFixture('lmstat_app3.txt'));
    const out = await check(probe({ argv: [lmutil], parse: 'lmstat' }), at('127.0.0.1'));
    expect(out.ok).toBe(false);
    expect(out.reason).toBe(`cannot tell which of host1, host2, host3 is this host (${hostname()}); give the server the address the license file's SERVER line uses`);
    expect(out.license?.features).toHaveLength(46);
  });

  it('adds stderr to the reason when stdout holds no lmstat status at all', async () => {
    const lmutil = script('lmutil-nolicense', 'echo "lmutil: cannot find license file" >&2\nexit 1');
    const out = await check(probe({ argv: [lmutil], parse: 'lmstat' }), at('host1'));
    expect(out.ok).toBe(false);
    expect(out.reason).toBe('no license server status in lmstat output (stderr: lmutil: cannot find license file)');
  });

  it("gives the command the check's env over what it keeps of licgate's own, LANG and LC_ALL staying C", async () => {
    const printEnv = script('print-env', 'printf "%s|%s|%s|%s" "$JAVA_HOME" "$LM_LICENSE_FILE" "$LANG" "$LC_ALL"');
    const saved = process.env.LM_LICENSE_FILE;
    process.env.LM_LICENSE_FILE = '27000@from-licgate';
    let out: ProbeOutcome;
    try {
      out = await check(probe({ argv: [printEnv], env: { JAVA_HOME: '/opt/java 17', LM_LICENSE_FILE: '27000@lic1' }, expect: { literal: '/opt/java 17|27000@lic1|C|C' } }), at('host1'));
    } finally {
      if (saved === undefined) delete process.env.LM_LICENSE_FILE;
      else process.env.LM_LICENSE_FILE = saved;
    }
    expect(out).toMatchObject({ ok: true });
  });

  it('reports "timeout" for a hanging lmutil, settles promptly and leaves no process behind', async () => {
    const pidFile = join(scratch, 'hang.pid');
    const lmutil = script('lmutil-hang', `echo $$ > ${q(pidFile)}.tmp && mv ${q(pidFile)}.tmp ${q(pidFile)}\nsleep 60 &\nsleep 60`);
    const started = performance.now();
    const out = await check(probe({ argv: [lmutil, 'lmstat', '-a'], parse: 'lmstat', timeout: 300 }), at('host1'), 300);
    // A hang would take the full 60 s; "promptly" is the kill plus pipe close, well under this bound.
    expect(performance.now() - started).toBeLessThan(5000);
    expect(out).toEqual({ ok: false, reason: 'timeout after 300 ms (lmutil-hang killed)' });
    expect(existsSync(pidFile)).toBe(true);
    const pgid = Number(readFileSync(pidFile, 'utf8').trim());
    expect(pgid).toBeGreaterThan(1);
    await waitFor(() => processGroupGone(pgid), { timeoutMs: 5000, what: `process group ${pgid} of the hanging lmutil (and its background sleep) to be gone` });
  });

  it('fails a flooding command once read_limit is reached, and kills it', async () => {
    const pidFile = join(scratch, 'flood.pid');
    const lmutil = script('lmutil-flood', `echo $$ > ${q(pidFile)}\nexec yes 'Users of feature1:  (Total of 2 licenses issued;  Total of 0 licenses in use)'`);
    const started = performance.now();
    const out = await check(probe({ argv: [lmutil], parse: 'lmstat', read_limit: 4096 }), at('host1'));
    expect(performance.now() - started).toBeLessThan(5000);
    // Only feature lines before the cut: lmstat's verdict comes from the head, which holds no status.
    expect(out).toMatchObject({ ok: false, reason: 'no license server status in lmstat output, output cut at 4096 bytes' });
    const pgid = Number(readFileSync(pidFile, 'utf8').trim());
    await waitFor(() => processGroupGone(pgid), { timeoutMs: 5000, what: `process group ${pgid} of the flooding command to be gone` });
  });
});

describe('exec probe with parse: lmstat and output over read_limit', () => {
  const MIB = 1024 * 1024;
  const app3 = lmstatFixture('lmstat_app3.txt');
  const app3Text = readFileSync(app3, 'utf8');
  /** A busy server's `lmstat -a`: the capture, then megabytes of user lines (every checkout is one). */
  const busyLmutil = (name: string): string =>
    script(name, `cat ${q(app3)}\nyes '    user1 ws042 /dev/pts/3 (v11.14) (host1/1999 4242), start Mon 3/2 9:15' | head -c 3000000`);

  it('judges a busy server by the complete server and vendor sections, counts the features before the cut and says so', async () => {
    const lmutil = busyLmutil('lmutil-busy');
    const out = await check(probe({ argv: [lmutil, 'lmstat', '-a', '-c', '1999@{host}'], parse: 'lmstat' }), at('host1', 1999));
    expect(out).toEqual({
      ok: true,
      reason: `lmgrd UP (MASTER) [3/3 servers UP], vendors daemon1, DAEMON2 UP, 46 features, output cut at ${MIB} bytes`,
      license: { ...APP3_LICENSE, truncated: true },
    });
  });

  it('counts only the features whose line came before the cut', async () => {
    const lmutil = busyLmutil('lmutil-busy-cut-features');
    // The cut falls inside feature13's line: feature1 … feature12 are counted.
    const limit = app3Text.indexOf('Users of feature13:') + 30;
    const out = await check(probe({ argv: [lmutil], parse: 'lmstat', read_limit: limit }), at('host1'));
    expect(out.ok).toBe(true);
    expect(out.reason).toBe(`lmgrd UP (MASTER) [3/3 servers UP], vendors daemon1, DAEMON2 UP, 12 features, output cut at ${limit} bytes`);
    expect(out.license).toEqual({ ...APP3_LICENSE, features: APP3_LICENSE.features.slice(0, 12), truncated: true });
  });

  it('still fails when the cut falls inside the server or the vendor daemon status', async () => {
    const lmutil = busyLmutil('lmutil-busy-cut-status');
    for (const cutAfter of ['host3: license serv', '   DAEMON2: U']) {
      const limit = app3Text.indexOf(cutAfter) + cutAfter.length;
      const out = await check(probe({ argv: [lmutil], parse: 'lmstat', read_limit: limit }), at('host1'));
      expect(out).toEqual({
        ok: false,
        reason: `output over ${limit} bytes, cut before lmstat's feature list (lmutil-busy-cut-status killed); raise read_limit or narrow the command`,
      });
    }
  });

  it('does not tell the admin to raise a read_limit that is already at its maximum', async () => {
    const cmd = script('flood-at-max', 'exec yes');
    const out = await check(probe({ argv: [cmd] }), at('h'));
    expect(out).toEqual({ ok: false, reason: `output over ${MIB} bytes (flood-at-max killed); read_limit is at its maximum: narrow the command` });
  });
});

describe('exec probe with a check process that outlives SIGKILL', () => {
  it('starts no second process for the server while the last one has not exited, says why, and resumes once it exits', async (ctx) => {
    requireTools(['strace'], ctx);
    // Every start appends its pid. Until `released` exists the command hangs (lmutil on a dead NFS
    // mount); the test then holds its exit, so that SIGKILL cannot end it (state D in real life).
    const runs = join(scratch, 'stuck.runs');
    const released = join(scratch, 'stuck.released');
    const lmutil = script(
      'lmutil-stuck',
      `echo $$ >> ${q(runs)}\nif [ -e ${q(released)} ]; then cat ${q(lmstatFixture('lmstat_app3.txt'))}; exit 0; fi\nexec sleep 60`,
    );
    const started = (): number[] => (existsSync(runs) ? readFileSync(runs, 'utf8').split('\n').filter(Boolean).map(Number) : []);
    const p = probe({ argv: [lmutil, 'lmstat', '-a'], parse: 'lmstat', timeout: 20_000 });
    const timeout = new AbortController();
    const first = p.run(at('host1'), timeout.signal);
    const [pid] = await waitFor(() => started().length === 1 && started(), { timeoutMs: 5000, what: 'the first check process to start' });
    const hold = await holdExit(pid!);
    try {
      timeout.abort(); // the check timeout: the process group gets SIGKILL
      expect(processState(pid!)).not.toBeNull();

      const t0 = performance.now();
      const second = await p.run(at('host1'), AbortSignal.timeout(2000));
      expect(second).toEqual({ ok: false, reason: `previous check process ${pid} still running after SIGKILL` });
      expect(performance.now() - t0).toBeLessThan(1000);
      expect(started()).toEqual([pid]);
    } finally {
      hold.release();
    }
    // It exits at last: that check settles, and the next one runs a new process again.
    await first;
    writeFileSync(released, '');
    const third = await p.run(at('host1'), AbortSignal.timeout(10_000));
    expect(third).toMatchObject({ ok: true, reason: 'lmgrd UP (MASTER) [3/3 servers UP], vendors daemon1, DAEMON2 UP, 46 features' });
    expect(started()).toHaveLength(2);
  });

  it('under the scheduler, a server whose check process will not die gets no new one every interval', async (ctx) => {
    requireTools(['strace'], ctx);
    const runs = join(scratch, 'sched-stuck.runs');
    const released = join(scratch, 'sched-stuck.released');
    const lmutil = script(
      'lmutil-sched-stuck',
      `echo $$ >> ${q(runs)}\nif [ -e ${q(released)} ]; then cat ${q(lmstatFixture('lmstat_app3.txt'))}; exit 0; fi\nexec sleep 60`,
    );
    const started = (): number[] => (existsSync(runs) ? readFileSync(runs, 'utf8').split('\n').filter(Boolean).map(Number) : []);
    const cfg = loadConfigText(
      [
        'status: { listen: "127.0.0.1:0" }',
        'backends:',
        '  - name: b',
        `    check: { type: exec, argv: [${JSON.stringify(lmutil)}], parse: lmstat, inter: 100ms, fastinter: 100ms, downinter: 100ms, rise: 1, fall: 1, timeout: 1500ms }`,
        '    servers:',
        '      - { name: host1, address: "host1:27000" }',
        '',
      ].join('\n'),
      'stuck.yaml',
    );
    const backend = new Backend(cfg.backends[0]!, new ModelEvents());
    const scheduler = new CheckScheduler(backend, backend.cfg.check, new ExecProbe(backend.cfg.check), new ModelEvents());
    const server = backend.servers[0]!;
    let hold: { release(): void } | undefined;
    try {
      scheduler.start();
      const [pid] = await waitFor(() => started().length === 1 && started(), { timeoutMs: 5000, what: 'the first check process to start' });
      hold = await holdExit(pid!);
      const stuck = `previous check process ${pid} still running after SIGKILL`;
      const seen = (): string => `${started().length} check processes started, last check: ${server.lastCheck?.reason ?? 'none'}`;
      await waitFor(() => server.lastCheck?.reason === stuck || Promise.reject(new Error(seen())), { timeoutMs: 5000, what: `a check failing with "${stuck}"` });
      expect(server.stateText).toBe('DOWN');
      // Ten intervals later there is still only the one process.
      await holdsFor(() => started().length === 1 && server.lastCheck?.reason === stuck, { forMs: 1000, what: 'one check process, checks failing' });
      writeFileSync(released, '');
      hold.release();
      await waitFor(() => server.stateText === 'UP', { timeoutMs: 10_000, what: `host1 UP once the stuck process exited` });
      expect(started()).toHaveLength(2);
    } finally {
      hold?.release();
      scheduler.stop();
    }
  });
});

describe('exec probe with a check process that outlives SIGKILL, across a reload', () => {
  it('a reload that keeps the server (same backend and name) starts no second process while the stuck one has not exited', async (ctx) => {
    requireTools(['strace'], ctx);
    const runs = join(scratch, 'reload-stuck.runs');
    const released = join(scratch, 'reload-stuck.released');
    const lmutil = script('lmutil-reload-stuck', `echo $$ >> ${q(runs)}\nif [ -e ${q(released)} ]; then exit 0; fi\nexec sleep 60`);
    const started = (): number[] => (existsSync(runs) ? readFileSync(runs, 'utf8').split('\n').filter(Boolean).map(Number) : []);
    const file = join(scratch, 'reload-stuck.yaml');
    const yaml = (weight: number): string =>
      [
        'status: { listen: "127.0.0.1:0" }',
        'backends:',
        '  - name: b',
        `    check: { type: exec, argv: [${JSON.stringify(lmutil)}], inter: 100ms, fastinter: 100ms, downinter: 100ms, rise: 1, fall: 1, timeout: 1500ms }`,
        '    servers:',
        `      - { name: host1, address: "127.0.0.1:27000", weight: ${weight} }`,
        '',
      ].join('\n');
    writeFileSync(file, yaml(1));
    const d = new Daemon(loadConfigFile(file), pino({ level: 'silent' }));
    let hold: { release(): void } | undefined;
    try {
      await d.start();
      const [pid] = await waitFor(() => started().length === 1 && started(), { timeoutMs: 5000, what: 'the first check process to start' });
      hold = await holdExit(pid!);
      const stuck = `previous check process ${pid} still running after SIGKILL`;
      const reason = (): string | undefined => d.model.backend('b')!.server('host1')!.lastCheck?.reason;
      await waitFor(() => reason() === stuck, { timeoutMs: 5000, what: `a check failing with "${stuck}"` });

      writeFileSync(file, yaml(2));
      const outcome = await d.reload('test');
      expect(outcome).toMatchObject({ ok: true, changes: ['backend b: server host1 weight 1 -> 2'] });
      // Ten intervals of the reloaded config: still the one process, and the checks say why.
      await holdsFor(() => started().length === 1, { forMs: 1000, what: `one check process (started: ${started().join(', ')})` });
      await waitFor(() => reason() === stuck, { timeoutMs: 2000, what: `the reloaded config's checks failing with "${stuck}"` });
      writeFileSync(released, '');
      hold.release();
      await waitFor(() => d.model.backend('b')!.server('host1')!.stateText === 'UP', { timeoutMs: 10_000, what: 'host1 UP once the stuck process exited' });
      expect(started()).toHaveLength(2);
    } finally {
      hold?.release();
      await d.close();
    }
  });
});

/** What license-usage.csv.txt holds. */
const USAGE_LICENSE = {
  servers: [{ host: 'lic1', up: true, master: true }],
  vendors: [{ name: 'DSLS', up: true }],
  features: [
    { name: 'MD2', issued: 10, in_use: 3 },
    { name: 'HD2', issued: 5, in_use: 2 },
    { name: 'KIN', issued: 2, in_use: 0 },
  ],
  errors: [],
};

describe('exec probe with parse: dsls', () => {
  it('is healthy when DSLicSrv printed the usage CSV, with the features', async () => {
    const dsls = script('DSLicSrv-ok', `cat ${q(dslsFixture('license-usage.csv.txt'))}`);
    const out = await check(probe({ argv: [dsls, '-admin'], parse: 'dsls' }), at('127.0.0.1', 4084));
    expect(out).toEqual({
      ok: true,
      reason: 'DSLS on lic1 answered, 3 features',
      license: USAGE_LICENSE,
    });
  });

  it('is unhealthy when the admin tool could not connect, although it exits 0', async () => {
    const dsls = script('DSLicSrv-refused', `cat ${q(dslsFixture('not-connected.txt'))}\nexit 0`);
    const out = await check(probe({ argv: [dsls, '-admin'], parse: 'dsls' }), at('127.0.0.1', 4084));
    expect(out).toMatchObject({ ok: false, reason: 'ERROR: Cannot connect to lic1:4084 (Connection refused)' });
    expect(out.license?.vendors).toEqual([{ name: 'DSLS', up: false }]);
  });

  it('is unhealthy when DSLicSrv says the server is not ready, although the usage CSV came back, and quotes it', async () => {
    // The admin tool's connect prints the server's status block ("Software version: ...", "Ready: yes");
    // a server whose license keys expired, or that is still starting, says "Ready: no" and serves nothing.
    const output = join(scratch, 'dsls-not-ready.txt');
    const usage = readFileSync(dslsFixture('license-usage.csv.txt'), 'utf8');
    writeFileSync(output, usage.replace('Connected to lic1:4084\n', 'Connected to lic1:4084\n\tSoftware version: 6.424.2\n\tReady: no\n'));
    const dsls = script('DSLicSrv-not-ready', `cat ${q(output)}`);
    const out = await check(probe({ argv: [dsls, '-admin'], parse: 'dsls' }), at('127.0.0.1', 4084));
    expect(out).toMatchObject({ ok: false, reason: 'DSLS on lic1 is not ready: it said "Ready: no"' });
    expect(out.license?.servers).toEqual([{ host: 'lic1', up: false, master: false }]);
    expect(out.license?.vendors).toEqual([{ name: 'DSLS', up: false }]);
  });
});

describe('exec probe with parse: dsls and output over read_limit', () => {
  const usage = readFileSync(dslsFixture('license-usage.csv.txt'), 'utf8');
  const md2Session = usage.split('\n').find((l) => l.includes(',ws-cad-014,'))!;
  /** A busy DSLS server: the fixture's rows, then a session row per checkout, megabytes of them. */
  const busyDsls = (name: string): string => {
    const rows = usage.slice(0, usage.lastIndexOf('> '));
    return script(name, `printf '%s' ${q(rows)}\nyes ${q(md2Session)} | head -c 3000000`);
  };

  it('judges a busy server that answered with the usage CSV as answering, counts the features before the cut and says so', async () => {
    const out = await check(probe({ argv: [busyDsls('DSLicSrv-busy'), '-admin'], parse: 'dsls' }), at('127.0.0.1', 4084));
    expect(out).toEqual({
      ok: true,
      reason: `DSLS on lic1 answered, 3 features, output cut at ${1024 * 1024} bytes`,
      license: { ...USAGE_LICENSE, truncated: true, features_may_continue: true },
    });
  });

  it('still fails when the cut falls before the usage CSV header is complete', async () => {
    const limit = usage.indexOf('Feature,Model') + 5;
    const out = await check(probe({ argv: [busyDsls('DSLicSrv-busy-cut-header'), '-admin'], parse: 'dsls', read_limit: limit }), at('127.0.0.1', 4084));
    expect(out).toEqual({
      ok: false,
      reason: `output over ${limit} bytes, cut before the usage CSV (DSLicSrv-busy-cut-header killed); raise read_limit or narrow the command`,
    });
  });
});

describe('exec probe without parse', () => {
  it('passes on the expected exit code and fails on another, quoting stderr', async () => {
    const cmd = script('exit3', 'echo "license file not found" >&2\nexit 3');
    expect(await check(probe({ argv: [cmd] }), at('h'))).toEqual({ ok: false, reason: 'exit code 3, expected 0: license file not found' });
    expect(await check(probe({ argv: [cmd], exit_code: 3 }), at('h'))).toEqual({ ok: true, reason: 'exit code 3' });
  });

  it('requires `expect` to match stdout when given', async () => {
    const cmd = script('status-running', 'echo "Server Status: Running"');
    expect(await check(probe({ argv: [cmd], expect: { regex: /Status: (Running|Up)/ } }), at('h'))).toEqual({
      ok: true,
      reason: 'exit code 0, stdout matched /Status: (Running|Up)/',
    });
    expect(await check(probe({ argv: [cmd], expect: { literal: 'Server Status: Down' } }), at('h'))).toEqual({
      ok: false,
      reason: 'stdout did not match "Server Status: Down": "Server Status: Running"',
    });
  });

  it('applies `expect` after a parser verdict too', async () => {
    const lmutil = fakeLmutil('lmutil-app3', lmstatFixture('lmstat_app3.txt'));
    const out = await check(probe({ argv: [lmutil], parse: 'lmstat', expect: { regex: /feature99:/ } }), at('host1'));
    expect(out.ok).toBe(false);
    expect(out.reason).toMatch(/^stdout did not match \/feature99:\/: "lmutil - Copyright/);
    expect(out.license?.features).toHaveLength(46);
  });

  it('substitutes {host} and {port} per argv element and passes shell metacharacters literally', async () => {
    const argsFile = join(scratch, 'args.txt');
    const victim = join(scratch, 'victim');
    const cmd = script('print-args', `for a in "$@"; do printf '%s\\n' "$a"; done > ${q(argsFile)}`);
    const nasty = `$(touch ${victim}); \`touch ${victim}\` | cat > ${victim} && rm -rf ${scratch} *`;
    const argv = [cmd, 'lmstat', '-c', '{port}@{host}', nasty, '{host}{host}', '{hostname}', '$HOME'];
    const out = await check(probe({ argv }), at('lic-a.example.org', 27001));
    expect(out).toEqual({ ok: true, reason: 'exit code 0' });
    expect(readFileSync(argsFile, 'utf8').split('\n').slice(0, -1)).toEqual([
      'lmstat',
      '-c',
      '27001@lic-a.example.org',
      nasty,
      'lic-a.example.orglic-a.example.org',
      '{hostname}',
      '$HOME',
    ]);
    expect(existsSync(victim)).toBe(false);
  });

  it('inserts a host value literally, even one that looks like a replacement pattern', () => {
    expect(expandArgv(['{host}', "x{host}y", '{port}'], { host: "$&$'$1", port: 5053 })).toEqual(["$&$'$1", "x$&$'$1y", '5053']);
  });

  it('fails with the reason when the command cannot be started', async () => {
    const missing = join(scratch, 'no-such-lmutil');
    const out = await check(probe({ argv: [missing, 'lmstat'] }), at('h'));
    expect(out.ok).toBe(false);
    expect(out.reason).toMatch(new RegExp(`^cannot run ${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: ENOENT`));
  });

  it('judges a command that exited by its exit code although a background job it left keeps its output open, and ends that job', async () => {
    // A wrapper that starts something in the background (an ssh ControlMaster, a `cmd &` it never
    // waits for) exits at once, but the job holds the check's stdout and stderr.
    const pidFile = join(scratch, 'leftover.pid');
    const cmd = script('leaves-a-job', `sleep 60 &\necho $$ > ${q(pidFile)}.tmp && mv ${q(pidFile)}.tmp ${q(pidFile)}\necho "Server Status: Running"\nexit 0`);
    const started = performance.now();
    const out = await check(probe({ argv: [cmd], expect: { literal: 'Running' }, timeout: 8000 }), at('h'), 8000);
    expect(out).toEqual({ ok: true, reason: 'exit code 0, stdout matched "Running"' });
    // Well under the 8 s timeout: the exit decides, not the last holder of the pipe.
    expect(performance.now() - started).toBeLessThan(3000);
    const pgid = Number(readFileSync(pidFile, 'utf8').trim());
    expect(pgid).toBeGreaterThan(1);
    await waitFor(() => processGroupGone(pgid), { timeoutMs: 5000, what: `the background job (process group ${pgid}) to be ended with the check` });
  });

  it('reports a command killed by a signal', async () => {
    const cmd = script('self-kill', 'kill -TERM $$');
    expect(await check(probe({ argv: [cmd] }), at('h'))).toEqual({ ok: false, reason: 'self-kill killed by SIGTERM' });
  });
});
