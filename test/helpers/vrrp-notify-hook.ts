import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

/** The notify hook licgate ships for keepalived (keepalived/licgate-vrrp-notify.sh). */
export const NOTIFY_HOOK = fileURLToPath(new URL('../../keepalived/licgate-vrrp-notify.sh', import.meta.url));

/** Runs the shipped hook as keepalived would on a transition of instance VI_LICGATE: it records the role in `file`. */
export function keepalivedReports(file: string, state: string, priority: string): void {
  const r = spawnSync(NOTIFY_HOOK, [file, 'INSTANCE', 'VI_LICGATE', state, priority], { encoding: 'utf8', env: {} });
  expect(r.status, r.stderr).toBe(0);
}
