import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { processGroupGone } from '../helpers/process-group.js';
import { CLI } from '../helpers/proxy-harness.js';
import { requireTools } from '../helpers/require-tools.js';
import { waitFor } from '../helpers/wait-for.js';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

// The demo listens on its fixed ports (127.0.0.1:27000, 27001, 27100, 8404; its simulators on
// 127.0.0.2 and 127.0.0.3): it is what `npm start` runs, and its ports are in the README. So it runs
// in a network namespace of its own (unshare -rn: a user namespace, no root needed), where nothing
// else holds them and it touches no port of this host.
function spawnDemo(): ReturnType<typeof spawn> {
  return spawn('unshare', ['--net', '--map-root-user', 'sh', '-c', 'ip link set lo up && exec "$0" "$1" demo', process.execPath, CLI], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
}

describe('licgate demo (npm start)', () => {
  beforeEach((ctx) => requireTools(['unshare', 'ip'], ctx));

  it('SIGHUP reloads its embedded config: no error about a file named <demo>; SIGTERM still stops it, exit 0', async () => {
    // Its own process group: the demo's simulators go with it when a failing test kills it.
    const child = spawnDemo();
    const pgid = child.pid!;
    cleanup.push(async () => {
      if (processGroupGone(pgid)) return;
      process.kill(-pgid, 'SIGKILL');
      await waitFor(() => processGroupGone(pgid), { timeoutMs: 5000, what: 'the demo and its simulators gone' });
    });
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
    const exited = once(child, 'exit');
    await waitFor(() => child.exitCode !== null || out.includes('licgate demo is running.'), { timeoutMs: 20_000, what: 'the demo running, or an exit' });
    expect(child.exitCode, out).toBeNull();

    child.kill('SIGHUP');
    const reloadLine = (): string | undefined => out.split('\n').find((l) => l.includes('config reload'));
    // The demo's output goes with a timeout, which says nothing of what the demo did meanwhile.
    await waitFor(() => child.exitCode !== null || reloadLine(), { timeoutMs: 10_000, what: 'the reload logged, or an exit' }).catch((e: Error) => {
      throw new Error(`${e.message}\n--- demo output ---\n${out}`);
    });
    expect({ exit: child.exitCode, line: reloadLine() }).toEqual({ exit: null, line: expect.stringMatching(/INFO config reloaded from the demo's embedded config \(SIGHUP\): no changes/) });
    expect(out).not.toContain('ENOENT');

    child.kill('SIGTERM');
    expect(await exited).toEqual([0, null]);
    await waitFor(() => processGroupGone(pgid), { timeoutMs: 5000, what: 'the simulators gone with the demo' });
  });
});
