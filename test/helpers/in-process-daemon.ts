import { pino } from 'pino';
import { loadConfigText } from '../../src/config/load.js';
import { Daemon } from '../../src/daemon.js';
import type { LicenseSimulator } from '../../src/simulator/license-simulator.js';
import { startInProcessSimulator } from './proxy-harness.js';

/** A daemon in the test process (real listeners on 127.0.0.1), for tests that look at the model directly. */
export async function startDaemon(yaml: string): Promise<Daemon> {
  const d = new Daemon(loadConfigText(yaml, 'test.yaml'), pino({ level: 'silent' }));
  await d.start();
  return d;
}

export function startSimulators(names: string[], tokens = 100): Promise<LicenseSimulator[]> {
  return Promise.all(names.map((name) => startInProcessSimulator(name, { tokens })));
}
