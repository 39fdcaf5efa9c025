/**
 * The lmstat captures in ../shared/fixtures/lmstat/ (shared/ is a sibling of the repo, locally and
 * in CI) and what the parser must read from them, for tests that check the parsed license end to
 * end (probe outcome, GET /status).
 */
import { fileURLToPath } from 'node:url';
import type { LicenseInfo } from '../../src/health/parse/license-info.js';

export function lmstatFixturePath(name: string): string {
  return fileURLToPath(new URL(`../../../shared/fixtures/lmstat/${name}`, import.meta.url));
}

/** lmstat_app3.txt: triad, host1 MASTER, two vendor daemons (status on host1), 46 features. */
export const APP3_LICENSE: LicenseInfo = {
  servers: [
    { host: 'host1', up: true, master: true },
    { host: 'host2', up: true, master: false },
    { host: 'host3', up: true, master: false },
  ],
  vendors: [
    { name: 'daemon1', up: true, version: '11.14', server: 'host1' },
    { name: 'DAEMON2', up: true, version: '11.13', server: 'host1' },
  ],
  features: [
    { name: 'feature1', issued: 2, in_use: 0 },
    { name: 'feature2', issued: 25, in_use: 0 },
    { name: 'feature3', issued: 5, in_use: 0 },
    { name: 'feature4', issued: 1, in_use: 0 },
    { name: 'feature5', issued: 1, in_use: 1 },
    { name: 'feature6', issued: 2, in_use: 2 },
    { name: 'feature7', issued: 600, in_use: 163 },
    { name: 'feature8', issued: 100, in_use: 0 },
    { name: 'feature9', issued: 100, in_use: 39 },
    { name: 'feature10', issued: 100, in_use: 0 },
    { name: 'feature11', issued: 150, in_use: 0 },
    { name: 'feature12', issued: 100, in_use: 1 },
    // feature13 … feature46: 2 issued, none in use
    ...Array.from({ length: 34 }, (_, i) => ({ name: `feature${i + 13}`, issued: 2, in_use: 0 })),
  ],
  errors: [],
  triads: [['host1', 'host2', 'host3']],
};

/** The error lmstat prints for the unreachable member in lmstat_server_down.txt. */
export const HOST3_CANNOT_CONNECT = 'Cannot connect to license server system. (-15,570:115 "Operation now in progress")';

/** lmstat_server_down.txt: triad, host2 MASTER, host3 unreachable. */
export const SERVER_DOWN_LICENSE: LicenseInfo = {
  servers: [
    { host: 'host1', up: true, master: false },
    { host: 'host2', up: true, master: true },
    { host: 'host3', up: false, master: false },
  ],
  vendors: [{ name: 'daemon', up: true, version: '11.13.1', server: 'host2' }],
  features: [
    { name: 'feature1', issued: 144, in_use: 0 },
    { name: 'feature2', issued: 144, in_use: 39 },
  ],
  errors: [`host3: ${HOST3_CANNOT_CONNECT}`],
  triads: [['host1', 'host2', 'host3']],
};
