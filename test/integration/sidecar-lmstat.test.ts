/**
 * A real `licgate run` sidecar guarding one FlexLM triad member (host3) with an exec check that
 * parses `lmutil lmstat` output. The stand-in lmutil prints whatever capture the test put in place,
 * so the test can take the member down by swapping one file.
 */
import { copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { LicenseInfo } from '../../src/health/parse/license-info.js';
import { APP3_LICENSE, HOST3_CANNOT_CONNECT, lmstatFixturePath, SERVER_DOWN_LICENSE } from '../helpers/lmstat-fixtures.js';
import { oneServerYaml, startProxy, startSimulator, stopAll, type ServerStatus } from '../helpers/proxy-harness.js';
import { waitFor } from '../helpers/wait-for.js';
import { askLine } from './haproxy-lab.js';

const scratch = mkdtempSync(join(tmpdir(), 'licgate-sidecar-lmstat-'));
afterEach(() => stopAll());
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const q = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;

/** Replaces a file in one step, so the fake lmutil never reads half of it. */
function swapIn(target: string, fixture: string): void {
  copyFileSync(fixture, `${target}.tmp`);
  renameSync(`${target}.tmp`, target);
}

/** lmstat_app3.txt with host3 the MASTER instead of host1: a file to swapIn. */
function host3Master(): string {
  const app3 = readFileSync(lmstatFixturePath('lmstat_app3.txt'), 'latin1');
  const file = join(scratch, 'lmstat-host3-master.txt');
  writeFileSync(file, app3.replace('host1: license server UP (MASTER)', 'host1: license server UP').replace('host3: license server UP', 'host3: license server UP (MASTER)').replace('(on host1)', '(on host3)'), 'latin1');
  return file;
}

/** One exchange with a sidecar's STATUS (or agent) responder: the whole reply, up to its close. */
function askStatus(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: '127.0.0.1', port });
    let reply = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no complete STATUS reply within 5 s (got ${JSON.stringify(reply)})`));
    }, 5000);
    sock.setEncoding('latin1');
    sock.on('connect', () => sock.write('STATUS\r\n'));
    sock.on('data', (d: string) => (reply += d));
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.on('end', () => {
      clearTimeout(timer);
      sock.destroy();
      resolve(reply);
    });
  });
}

type LicenseStatus = ServerStatus & {
  last_check: (ServerStatus['last_check'] & { license?: LicenseInfo }) | null;
  last_whole_license?: { at: string; license: LicenseInfo };
};

/**
 * A sidecar for `name` (the license file's SERVER name, host3 by default) whose exec check runs
 * `lmutil` every 200 ms and parses lmstat; `head`: its sections before `backends`, `checkKeys`: more
 * check keys.
 */
async function lmstatSidecar(lmutil: string, head: string, checkKeys = '', name = 'host3') {
  const sidecar = await startProxy(`${head}
backends:
  - name: flexlm
    check:
      type: exec
      argv: [${JSON.stringify(lmutil)}, lmstat, -a, -c, "{port}@{host}"]
      parse: lmstat
${checkKeys}      inter: 200ms
      rise: 1
      fall: 1
      timeout: 5s
    servers:
      - { name: ${name}, address: "${name}:1999" }
`);
  return { sidecar, server: async (): Promise<LicenseStatus> => (await sidecar.server('flexlm', name)) as LicenseStatus };
}

describe('sidecar with an exec check parsing lmstat', () => {
  it('shows the parsed license in /status and answers STATUS, the agent and /health for the local triad member, standby or MASTER', async () => {
    const current = join(scratch, 'lmstat-output.txt');
    const argsFile = join(scratch, 'lmutil-args.txt');
    swapIn(current, lmstatFixturePath('lmstat_app3.txt'));
    const lmutil = join(scratch, 'lmutil');
    // The arguments land under a temporary name and are renamed into place: a check that starts
    // (every 200 ms) while the test reads argsFile would otherwise have truncated it to nothing.
    writeFileSync(lmutil, `#!/bin/sh\nprintf '%s\\n' "$@" > ${q(`${argsFile}.tmp`)}\nmv ${q(`${argsFile}.tmp`)} ${q(argsFile)}\ncat ${q(current)}\n`, { mode: 0o755 });

    // The server is named as the license file's SERVER line names it, so the probe knows which
    // lmstat line is the member this sidecar guards.
    const { sidecar, server } = await lmstatSidecar(lmutil, 'status:\n  listen: 127.0.0.1:0\nagent: { listen: 127.0.0.1:0, backend: flexlm }');
    const statusPort = sidecar.listening.status;
    expect(typeof statusPort).toBe('number');

    // A standby: lmstat lists host3 UP, but host1 is the MASTER, the only member that serves.
    // Healthy (Running, /health 200), and the agent puts it in MAINT: HAProxy sends a MAINT server
    // no client, persistent ones included, and does not log it DOWN.
    const standby = await waitFor(async () => {
      const s = await server();
      return s.last_check?.ok === true && s.state === 'UP (standby)' && s;
    }, { timeoutMs: 10_000, what: 'host3 UP (standby) after a passing lmstat check' });
    expect(standby.last_check!.reason).toBe('triad standby: host1 is MASTER [3/3 servers UP]');
    expect(standby.last_check!.license).toEqual(APP3_LICENSE);
    expect(readFileSync(argsFile, 'utf8')).toBe('lmstat\n-a\n-c\n1999@host3\n');
    expect(await askStatus(statusPort as number)).toBe('Server Status: Running\r\nBackend: flexlm\r\nTier: none\r\nStandby: host1 is MASTER\r\nServers: 1/1 up\r\n');
    expect(await askStatus(sidecar.listening.agent!)).toBe('up maint 100% #triad standby: host1 is MASTER [3/3 servers UP]\n');
    expect((await sidecar.get('/health')).status).toBe(200);

    // host3 becomes the MASTER: ready at the next check.
    swapIn(current, host3Master());
    const up = await waitFor(async () => {
      const s = await server();
      return s.last_check?.ok === true && s.state === 'UP' && s;
    }, { timeoutMs: 10_000, what: 'host3 UP once lmstat shows it MASTER' });
    expect(up.last_check!.reason).toBe('lmgrd UP (MASTER) [3/3 servers UP], vendors daemon1, DAEMON2 UP, 46 features');
    expect(await askStatus(statusPort as number)).toBe('Server Status: Running\r\nBackend: flexlm\r\nTier: active\r\nServers: 1/1 up\r\n');
    expect(await askStatus(sidecar.listening.agent!)).toBe('up ready 100%\n');

    // host3's lmgrd stops answering; lmutil still exits 0, only its text says so.
    swapIn(current, lmstatFixturePath('lmstat_server_down.txt'));
    const down = await waitFor(async () => {
      const s = await server();
      return s.last_check?.ok === false && s.state === 'DOWN' && s;
    }, { timeoutMs: 10_000, what: 'host3 DOWN after lmstat reports it unreachable' });
    expect(down.last_check!.reason).toBe(`lmgrd on host3 DOWN: ${HOST3_CANNOT_CONNECT}`);
    expect(down.last_check!.license).toEqual(SERVER_DOWN_LICENSE);
    expect(await askStatus(statusPort as number)).toBe('Server Status: Down\r\nBackend: flexlm\r\nTier: none\r\nServers: 0/1 up\r\n');
    const health = await sidecar.get('/health');
    expect(health.status).toBe(503);
    expect(health.json).toMatchObject({ ok: false, backends: { flexlm: { running: false } } });
  });

  it('shows the output read whole that agent.weight_from counts from beside a last check whose output was cut', async () => {
    const current = join(scratch, 'lmstat-whole-then-cut.txt');
    swapIn(current, lmstatFixturePath('lmstat_app3.txt'));
    // Peak use: 200 more users of feature7 push feature8 on past read_limit (24 KiB; 15 KB in).
    const app3 = readFileSync(lmstatFixturePath('lmstat_app3.txt'), 'latin1');
    const feature8 = app3.indexOf('Users of feature8:');
    const users = Array.from({ length: 200 }, (_, i) => `    user${i} ws${i} /dev/tty (v2017.06) (host1/1999 ${30000 + i}), start Fri 10/20 16:50\n`).join('');
    const busy = join(scratch, 'lmstat-busy.txt');
    writeFileSync(busy, app3.slice(0, feature8) + users + app3.slice(feature8), 'latin1');
    const lmutil = join(scratch, 'lmutil-cat');
    writeFileSync(lmutil, `#!/bin/sh\ncat ${q(current)}\n`, { mode: 0o755 });
    const agent = 'agent: { listen: 127.0.0.1:0, backend: flexlm, weight_from: { feature: feature9, min_percent: 20 } }';
    // host1, the MASTER: a standby would advertise maint whatever its count.
    const { sidecar, server } = await lmstatSidecar(lmutil, agent, '      read_limit: 24576\n', 'host1');
    const whole = await waitFor(async () => {
      const s = await server();
      return s.last_check?.ok === true && s;
    }, { timeoutMs: 10_000, what: 'a passing check of the whole output' });
    expect(whole.last_whole_license?.license).toEqual(APP3_LICENSE);

    swapIn(current, busy);
    const cut = await waitFor(async () => {
      const s = await server();
      return s.last_check?.license?.truncated === true && s;
    }, { timeoutMs: 10_000, what: 'a check of the cut output' });
    expect(cut.last_check!.ok).toBe(true);
    expect(cut.last_check!.license!.features.map((f) => f.name)).not.toContain('feature9');
    // The count the agent reply is made of, and when it was read: before the cut check, and kept.
    expect(cut.last_whole_license!.license).toEqual(APP3_LICENSE);
    const wholeAt = Date.parse(cut.last_whole_license!.at);
    expect(wholeAt).toBeGreaterThanOrEqual(Date.parse(whole.last_check!.at));
    expect(wholeAt).toBeLessThan(Date.parse(cut.last_check!.at));
    expect(await askStatus(sidecar.listening.agent!)).toMatch(/^up ready 61% #feature9 61\/100 free \d+s ago; output since cut before feature9\n$/);
    const later = await waitFor(async () => {
      const s = await server();
      return Date.parse(s.last_check!.at) > Date.parse(cut.last_check!.at) && s;
    }, { timeoutMs: 10_000, what: 'the next check of the cut output' });
    expect(later.last_check!.license!.truncated).toBe(true);
    expect(later.last_whole_license!.at).toBe(cut.last_whole_license!.at);
  });

  it('a proxy checking the member through its sidecar with type: status sends it no client while it is a standby', async () => {
    const current = join(scratch, 'lmstat-status-proxy.txt');
    swapIn(current, lmstatFixturePath('lmstat_app3.txt'));
    const lmutil = join(scratch, 'lmutil-status-proxy');
    writeFileSync(lmutil, `#!/bin/sh\ncat ${q(current)}\n`, { mode: 0o755 });
    const { sidecar } = await lmstatSidecar(lmutil, 'status:\n  listen: 127.0.0.1:0');
    const sim = await startSimulator('host3');
    // The design's proxy: the check asks the sidecar's STATUS port, clients go to the license port.
    const proxy = await startProxy(oneServerYaml(sim.port, `{ type: status, port: ${sidecar.listening.status!}, inter: 200ms, rise: 1, fall: 1, timeout: 2s }`));
    const standby = await waitFor(async () => {
      const s = await proxy.server('licenses', 'primary');
      return s.state === 'UP (standby)' && s;
    }, { timeoutMs: 10_000, what: 'the proxy to read host3 UP (standby) from the sidecar STATUS' });
    expect(standby.last_check!.reason).toBe('triad standby: host1 is MASTER (STATUS)');
    await expect(askLine(proxy.port, 'HELLO\n')).rejects.toThrow('connection closed without a line');

    // host3 becomes the MASTER: the sidecar's next check says so, then the proxy's.
    swapIn(current, host3Master());
    await waitFor(async () => (await proxy.server('licenses', 'primary')).state === 'UP', { timeoutMs: 10_000, what: 'the proxy to read host3 UP once it is MASTER' });
    expect(await askLine(proxy.port, 'HELLO\n')).toBe('HELLO host3');
  });

  // The sidecar answers a standby "up maint ... #triad standby": a proxy reading that agent, as its
  // check (type agent) or beside another check (agent_port), must send the member no client, and
  // take it back at the reply that says it is MASTER ("up ready"), as HAProxy leaves a MAINT.
  for (const how of ['check: { type: agent }', 'agent_port']) {
    it(`a proxy reading the member's sidecar agent (${how}) sends it no client while it is a standby, and takes it back at the agent's "up ready"`, async () => {
      const current = join(scratch, 'lmstat-agent-proxy.txt');
      swapIn(current, lmstatFixturePath('lmstat_app3.txt'));
      const lmutil = join(scratch, 'lmutil-agent-proxy');
      writeFileSync(lmutil, `#!/bin/sh\ncat ${q(current)}\n`, { mode: 0o755 });
      const { sidecar } = await lmstatSidecar(lmutil, 'agent: { listen: 127.0.0.1:0, backend: flexlm }');
      const agentPort = sidecar.listening.agent!;
      const sim = await startSimulator('host3');
      const yaml = how === 'agent_port'
        ? oneServerYaml(sim.port, '{ type: tcp, inter: 200ms, rise: 1, fall: 1, timeout: 2s }').replace('    check:', `    agent_port: ${agentPort}\n    agent_inter: 200ms\n    check:`)
        : oneServerYaml(sim.port, `{ type: agent, port: ${agentPort}, inter: 200ms, rise: 1, fall: 1, timeout: 2s }`);
      const proxy = await startProxy(yaml);
      const maint = await waitFor(async () => {
        const s = await proxy.server('licenses', 'primary');
        return s.state === 'MAINT (agent)' && s;
      }, { timeoutMs: 10_000, what: 'the proxy to read host3 MAINT (agent) from the sidecar agent' });
      expect(maint.usable).toBe(false);
      await expect(askLine(proxy.port, 'HELLO\n')).rejects.toThrow('connection closed without a line');
      expect(proxy.logs.filter((l) => typeof l.to === 'string' && l.to.startsWith('DOWN'))).toEqual([]);

      // host3 becomes the MASTER: the sidecar's next check says so, and the proxy's next agent read.
      swapIn(current, host3Master());
      await waitFor(async () => (await askStatus(agentPort)) === 'up ready 100%\n', { timeoutMs: 10_000, intervalMs: 10, what: 'the sidecar agent to say up ready' });
      const up = await waitFor(async () => {
        const s = await proxy.server('licenses', 'primary');
        return s.usable && s;
      }, { timeoutMs: 10_000, what: 'the proxy to take host3 back once its sidecar says up ready' });
      expect(up.state).toMatch(/^UP/);
      const line = await waitFor(() => proxy.logs.find((l) => l.server === 'primary' && l.from === 'MAINT (agent)'), { timeoutMs: 5000, what: 'the log line of host3 leaving MAINT (agent)' });
      // Straight back to UP by the reply itself: no DOWN, no rise to wait for.
      expect(line).toMatchObject({ to: 'UP', reason: expect.stringContaining('agent says "up ready 100%"') });
      expect(await askLine(proxy.port, 'HELLO\n')).toBe('HELLO host3');
      expect(proxy.logs.filter((l) => typeof l.to === 'string' && l.to.startsWith('DOWN'))).toEqual([]);
    });
  }
});
