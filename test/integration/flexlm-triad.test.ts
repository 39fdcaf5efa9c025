/**
 * A FlexLM three-server triad behind `licgate run`: only the MASTER serves licenses, so clients
 * must land on it alone, and follow it when another member becomes MASTER. The members are
 * FlexLM-mode simulators; the exec check runs a stand-in `lmutil` printing the triad's lmstat
 * output with the MASTER read from a file the test rewrites.
 */
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { clientAddresses, flexlmCheckout } from '../helpers/flexlm-client.js';
import { startFlexlmLab } from '../helpers/flexlm-lab.js';
import { stopFlexlmSimulators } from '../helpers/flexlm-simulator-process.js';
import { runCli, startProxy, stopAll, type ProxyProcess } from '../helpers/proxy-harness.js';
import { waitFor } from '../helpers/wait-for.js';

const scratch = mkdtempSync(join(tmpdir(), 'licgate-flexlm-triad-'));
afterEach(async () => {
  await stopAll();
  await stopFlexlmSimulators();
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const q = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;

/**
 * `lmutil lmstat -a -c PORT@HOST` for the triad h1, h2, h3 at 127.0.1.1-3 (startFlexlmLab), as the
 * member HOST prints it. A loopback server address means this machine to the lmstat verdict, which
 * finds it in the list by its host name (lmstat-local-verdict.ts), so the member asked about is
 * printed under this machine's name, the others under theirs.
 */
function standInLmutil(masterFile: string, gate?: string): string {
  const file = join(scratch, 'lmutil');
  writeFileSync(
    file,
    `#!/bin/sh
${gate === undefined ? '' : `while [ ! -e ${q(gate)} ]; do sleep 0.05; done`}
at=\${4##*@}
me=h\${at##*.}
master=$(cat ${q(masterFile)})
name() { if [ "$1" = "$me" ]; then echo ${q(hostname())}; else echo "$1"; fi; }
echo "License server status: 27000@$(name h1),27000@$(name h2),27000@$(name h3)"
for h in h1 h2 h3; do
  if [ "$h" = "$master" ]; then echo "$(name $h): license server UP (MASTER) v11.19.2"; else echo "$(name $h): license server UP v11.19.2"; fi
done
echo "Vendor daemon status (on $(name "$master")):"
echo "   simd: UP v11.19.2"
echo "Feature usage info:"
echo "Users of f1:  (Total of 1000 licenses issued;  Total of 0 licenses in use)"
`,
    { mode: 0o755 },
  );
  return file;
}

function setMaster(masterFile: string, name: string): void {
  writeFileSync(`${masterFile}.tmp`, `${name}\n`);
  renameSync(`${masterFile}.tmp`, masterFile);
}

/** A MASTER file naming h1, the stand-in lmutil reading it, and an admin token file holding `token`. */
function triadFiles(name: string, token: string): { masterFile: string; lmutil: string; tokenFile: string } {
  const masterFile = join(scratch, `master-${name}`);
  setMaster(masterFile, 'h1');
  const tokenFile = join(scratch, `admin-${name}.token`);
  writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  return { masterFile, lmutil: standInLmutil(masterFile), tokenFile };
}

function setState(proxy: ProxyProcess, server: string, state: string, token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ state });
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const req = request(`${proxy.adminUrl}/admin/backends/licenses/servers/${server}`, { method: 'POST', headers, timeout: 5000 }, (res) => {
      res.resume().on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error(`POST ${state} to ${server}: no answer within 5 s`))).on('error', reject);
    req.end(body);
  });
}

describe('a FlexLM triad behind the proxy', () => {
  it('sends every client to the MASTER only, and to the new MASTER once a check finds it', async () => {
    const masterFile = join(scratch, 'master');
    setMaster(masterFile, 'h1');
    const lmutil = standInLmutil(masterFile);
    const { lmgrdPort, proxy } = await startFlexlmLab(['h1', 'h2', 'h3'], [
      'stick: source',
      'on_marked_down: shutdown-sessions',
      `check: { type: exec, argv: [${JSON.stringify(lmutil)}, lmstat, -a, -c, "{port}@{host}"], parse: lmstat, inter: 200ms, fastinter: 100ms, rise: 3, fall: 2, timeout: 3s }`,
    ]);
    const states = async (): Promise<string[]> => Promise.all(['h1', 'h2', 'h3'].map(async (n) => (await proxy.server('licenses', n)).state));
    await waitFor(async () => (await states()).join() === 'UP,UP (standby),UP (standby)', { timeoutMs: 15_000, what: 'h1 UP, h2 and h3 UP (standby)' });
    expect((await proxy.server('licenses', 'h2')).last_check!.reason).toBe('triad standby: h1 is MASTER [3/3 servers UP]');

    const checkout = async (client: string): Promise<string> => {
      const r = await flexlmCheckout({ host: '127.0.0.1', lmgrdPort, localAddress: client });
      if (!r.granted) throw new Error(`${client}: checkout denied: ${r.detail}`);
      return r.server!;
    };
    const clients = clientAddresses(9);
    for (const c of clients) expect(await checkout(c)).toBe('h1');
    const metrics = (await proxy.get('/metrics')).body;
    expect(metrics).toContain('licgate_server_usable{backend="licenses",server="h2"} 0\n');
    expect(metrics).toContain('licgate_server_up{backend="licenses",server="h2"} 1\n');

    // h2 is elected MASTER: the first check of each member that says so moves the clients, the
    // sticky ones included (h1's vendor daemon no longer serves), without marking anything DOWN.
    setMaster(masterFile, 'h2');
    await waitFor(async () => (await states()).join() === 'UP (standby),UP,UP (standby)', { timeoutMs: 15_000, what: 'h2 UP, h1 and h3 UP (standby)' });
    for (const c of [...clients, ...clientAddresses(3, 30)]) expect(await checkout(c)).toBe('h2');
    // The log is written in batches: the line may come a moment after the state.
    const line = await waitFor(() => proxy.logs.find((l) => l.server === 'h1' && l.to === 'UP (standby)'), { timeoutMs: 5000, what: 'the log line of h1 going standby' });
    expect(line).toMatchObject({ from: 'UP', reason: 'triad standby: h2 is MASTER [3/3 servers UP]' });
    expect(proxy.logs.filter((l) => typeof l.to === 'string' && l.to.startsWith('DOWN'))).toEqual([]);
  });

  it('checks the member a new standby names as MASTER at once, so clients are served before its next inter', async () => {
    const { masterFile, lmutil, tokenFile } = triadFiles('handover', 'triad-handover-token');
    // inter 60 s: no regular check comes during the test, only those the handover brings.
    const { lmgrdPort, proxy } = await startFlexlmLab(
      ['h1', 'h2', 'h3'],
      ['stick: source', `check: { type: exec, argv: [${JSON.stringify(lmutil)}, lmstat, -a, -c, "{port}@{host}"], parse: lmstat, inter: 60s, fastinter: 100ms, downinter: 100ms, rise: 1, fall: 2, timeout: 3s }`],
      {},
      [`admin: { listen: "127.0.0.1:0", token_file: ${JSON.stringify(tokenFile)} }`],
    );
    const states = async (): Promise<string> => (await Promise.all(['h1', 'h2', 'h3'].map(async (n) => (await proxy.server('licenses', n)).state))).join();
    await waitFor(async () => (await states()) === 'UP,UP (standby),UP (standby)', { timeoutMs: 15_000, what: 'h1 UP, h2 and h3 UP (standby)' });

    // An admin restarts h1's lmgrd: h2 takes the MASTER role. Leaving maint checks h1 at once,
    // which finds it a standby of h2 while h2's own next check is a minute away.
    setMaster(masterFile, 'h2');
    expect(await setState(proxy, 'h1', 'maint', 'triad-handover-token')).toBe(200);
    expect(await setState(proxy, 'h1', 'ready', 'triad-handover-token')).toBe(200);
    await waitFor(async () => (await proxy.server('licenses', 'h1')).state === 'UP (standby)', { timeoutMs: 10_000, what: 'h1 UP (standby)' });
    const client = clientAddresses(1, 40)[0]!;
    // With no backup tier a client is denied until a member takes clients: poll until one is granted.
    const granted = await waitFor(
      async () => {
        const r = await flexlmCheckout({ host: '127.0.0.1', lmgrdPort, localAddress: client });
        if (!r.granted) throw new Error(`denied: ${r.detail} (states ${await states()})`);
        return r.server;
      },
      { timeoutMs: 10_000, intervalMs: 100, what: 'a checkout granted by the new MASTER h2' },
    );
    expect(granted).toBe('h2');
    expect(await states()).toBe('UP (standby),UP,UP (standby)');
  });

  it('shows an admin drain of a standby in ctl servers, and the drain holds when the member becomes MASTER', async () => {
    const { masterFile, lmutil, tokenFile } = triadFiles('drain', 'triad-drain-token');
    const { proxy } = await startFlexlmLab(
      ['h1', 'h2', 'h3'],
      [`check: { type: exec, argv: [${JSON.stringify(lmutil)}, lmstat, -a, -c, "{port}@{host}"], parse: lmstat, inter: 200ms, rise: 1, fall: 2, timeout: 3s }`],
      {},
      [`admin: { listen: "127.0.0.1:0", token_file: ${JSON.stringify(tokenFile)} }`],
    );
    await waitFor(async () => (await proxy.server('licenses', 'h2')).state === 'UP (standby)', { timeoutMs: 15_000, what: 'h2 UP (standby)' });
    expect(await setState(proxy, 'h2', 'drain', 'triad-drain-token')).toBe(200);
    const row = async (): Promise<string> => {
      const r = await runCli(['ctl', '--url', proxy.adminUrl, 'servers']);
      return r.stdout.split('\n').find((l) => /\bh2\b/.test(l)) ?? `no h2 row in: ${r.stdout}${r.stderr}`;
    };
    // As for a drain under DOWN or an agent's MAINT: the state says why it takes nothing now, the
    // admin's drain is what still holds when that ends.
    expect(await row()).toContain('UP (standby), admin drain');
    setMaster(masterFile, 'h2');
    await waitFor(async () => (await proxy.server('licenses', 'h1')).state === 'UP (standby)', { timeoutMs: 15_000, what: 'h1 UP (standby) once h2 is MASTER' });
    await waitFor(async () => (await proxy.server('licenses', 'h2')).state === 'DRAIN', { timeoutMs: 15_000, what: 'h2 DRAIN once it is MASTER' });
    expect(await row()).not.toContain('admin drain');
  });

  it('with init_state: down, sends no client to any member before the first lmstat, even on a first start with no state file', async () => {
    const masterFile = join(scratch, 'master-init-state');
    setMaster(masterFile, 'h1');
    // lmstat waits for this file: the first checks end when the test allows.
    const gate = join(scratch, 'lmstat-may-answer-init-state');
    const lmutil = standInLmutil(masterFile, gate);
    const down = 'init_state: down';
    const { lmgrdPort, proxy } = await startFlexlmLab(
      ['h1', 'h2', 'h3'],
      ['stick: source', `check: { type: exec, argv: [${JSON.stringify(lmutil)}, lmstat, -a, -c, "{port}@{host}"], parse: lmstat, inter: 1s, rise: 2, fall: 2, timeout: 20s }`],
      { h1: down, h2: down, h3: down },
      [],
      { waitReady: false },
    );
    const states = async (): Promise<string> => (await Promise.all(['h1', 'h2', 'h3'].map(async (n) => (await proxy.server('licenses', n)).state))).join();
    // The window a first start used to open: no check has ended. No member is a client's, so each
    // is closed at its lmgrd connect rather than sent to a standby whose vendor daemon denies it.
    for (const c of clientAddresses(3, 20)) await expect(flexlmCheckout({ host: '127.0.0.1', lmgrdPort, localAddress: c })).rejects.toThrow();
    expect(await states()).toBe('DOWN 1/2,DOWN 1/2,DOWN 1/2');
    const closed = (): unknown[][] => proxy.logs.filter((l) => l.msg === 'session closed').map((l) => [l.server, l.end]);
    await waitFor(() => closed().length >= 3, { timeoutMs: 5000, what: 'three session lines' });
    expect(closed()).toEqual([[null, 'no-server'], [null, 'no-server'], [null, 'no-server']]);

    writeFileSync(gate, '');
    await waitFor(async () => (await states()) === 'UP,UP (standby),UP (standby)', { timeoutMs: 15_000, what: 'h1 UP, h2 and h3 UP (standby) after the first checks' });
    for (const c of clientAddresses(6, 20)) {
      const r = await flexlmCheckout({ host: '127.0.0.1', lmgrdPort, localAddress: c });
      expect([r.server, r.granted]).toEqual(['h1', true]);
    }
    expect(proxy.logs.filter((l) => typeof l.to === 'string' && l.to.startsWith('DOWN'))).toEqual([]);
  });

  it('restarted with admin.state_file, sends the clients that come before the first checks end to the MASTER', async () => {
    const masterFile = join(scratch, 'master-restart');
    setMaster(masterFile, 'h1');
    // lmstat waits for this file: the test holds the first checks after the restart as long as it needs.
    const gate = join(scratch, 'lmstat-may-answer');
    writeFileSync(gate, '');
    const lmutil = standInLmutil(masterFile, gate);
    const stateFile = join(scratch, 'state-restart.json');
    const { lmgrdPort, proxy } = await startFlexlmLab(
      ['h1', 'h2', 'h3'],
      ['stick: source', `check: { type: exec, argv: [${JSON.stringify(lmutil)}, lmstat, -a, -c, "{port}@{host}"], parse: lmstat, inter: 1s, rise: 2, fall: 2, timeout: 20s }`],
      {},
      [`admin: { listen: "127.0.0.1:0", state_file: ${JSON.stringify(stateFile)} }`, 'shutdown_delay: 0s'],
    );
    const states = async (p: ProxyProcess): Promise<string> => (await Promise.all(['h1', 'h2', 'h3'].map(async (n) => (await p.server('licenses', n)).state))).join();
    await waitFor(async () => (await states(proxy)) === 'UP,UP (standby),UP (standby)', { timeoutMs: 15_000, what: 'h1 UP, h2 and h3 UP (standby)' });
    // Written on the standby change itself: no admin change, and a crash would keep it too.
    const saved = await waitFor(() => (JSON.parse(readFileSync(stateFile, 'utf8')) as { servers: unknown[] }).servers, { timeoutMs: 5000, what: `the standbys in ${stateFile}` });
    expect(saved).toEqual([
      { backend: 'licenses', server: 'h2', address: `127.0.1.2:${lmgrdPort}`, admin: 'ready', standby: true },
      { backend: 'licenses', server: 'h3', address: `127.0.1.3:${lmgrdPort}`, admin: 'ready', standby: true },
    ]);

    const config = readFileSync(proxy.configFile, 'utf8');
    rmSync(gate);
    await proxy.stop();
    const again = await startProxy(config, { waitReady: false });
    // No check has ended yet (each waits for the gate), so this is the gap a restart used to open.
    for (const c of clientAddresses(3, 20)) {
      const r = await flexlmCheckout({ host: '127.0.0.1', lmgrdPort, localAddress: c });
      expect(r.server).toBe('h1');
      expect(r.granted).toBe(true);
    }
    expect(await states(again)).toBe('UP 1/2,UP 1/2 (standby),UP 1/2 (standby)');
    expect((await again.status()).backends[0]!.servers.map((s) => s.last_check)).toEqual([null, null, null]);
    expect(again.logs.filter((l) => l.state_file === stateFile).map((l) => l.msg)).toEqual([
      `admin state of licenses/h2 restored from ${stateFile}: ready, weight 1/1; a FlexLM triad standby until its first check`,
      `admin state of licenses/h3 restored from ${stateFile}: ready, weight 1/1; a FlexLM triad standby until its first check`,
    ]);

    // The first checks decide as usual: h2 is the MASTER now.
    setMaster(masterFile, 'h2');
    writeFileSync(gate, '');
    await waitFor(async () => (await states(again)) === 'UP (standby),UP,UP (standby)', { timeoutMs: 15_000, what: 'h2 UP, h1 and h3 UP (standby) after the first checks' });
    await waitFor(() => (JSON.parse(readFileSync(stateFile, 'utf8')) as { servers: { server: string }[] }).servers.map((s) => s.server).join() === 'h1,h3', { timeoutMs: 5000, what: `h1 and h3 the standbys in ${stateFile}` });
  });
});
