/**
 * wallClockStep — a wall clock a test can step under a running licgate, as NTP or a live-migrated
 * VM's clock sync does:
 *
 *   const clock = wallClockStep(ctx);
 *   const { proxy } = await startFlexlmLab(['a', 'b'], keys, {}, [], { wrapper: clock.wrapper });
 *   clock.set('+1h');
 *
 * libfaketime is preloaded into the process and reads its offset from a file on every call
 * (FAKETIME_NO_CACHE), so Date.now() jumps while it runs; the monotonic clock is left alone
 * (FAKETIME_DONT_FAKE_MONOTONIC), so its timers and performance.now() go on as on a real host.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireTools, type SkipContext } from './require-tools.js';

export interface WallClockStep {
  /** Prefix for the command that runs licgate (StartProxyOptions.wrapper). */
  wrapper: string[];
  /** Sets the wall clock to real time plus `offset` ('+1h', '-1h', '+0'), taking effect at once. */
  set(offset: string): void;
  /** Removes the offset file. */
  dispose(): void;
}

const LIB_DIRS = ['/usr/lib/x86_64-linux-gnu/faketime', '/usr/lib/aarch64-linux-gnu/faketime', '/usr/lib/faketime'];

export function wallClockStep(ctx?: SkipContext): WallClockStep {
  requireTools(['faketime'], ctx);
  const lib = LIB_DIRS.map((d) => join(d, 'libfaketime.so.1')).find((f) => existsSync(f));
  if (!lib) throw new Error(`the faketime program is installed but libfaketime.so.1 is not in ${LIB_DIRS.join(', ')}`);
  const dir = mkdtempSync(join(tmpdir(), 'licgate-clock-'));
  const file = join(dir, 'offset');
  const set = (offset: string): void => writeFileSync(file, `${offset}\n`);
  set('+0');
  return {
    wrapper: ['env', `LD_PRELOAD=${lib}`, `FAKETIME_TIMESTAMP_FILE=${file}`, 'FAKETIME_NO_CACHE=1', 'FAKETIME_DONT_FAKE_MONOTONIC=1'],
    set,
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}
