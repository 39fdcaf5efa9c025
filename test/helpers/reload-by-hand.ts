import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { spawnRun, type RunProcess } from './licgate-run.js';
import { waitFor } from './wait-for.js';

/**
 * A config for `licgate reload` tests: an admin listener on 127.0.0.1:`admin` (a fixed port, as
 * examples/proxy.yaml has it, so the command finds it in the file; null: no admin section) and
 * frontends `fes` (name → port) to one unchecked backend.
 */
export function writeReloadConfig(file: string, admin: number | null, fes: Record<string, number>): string {
  writeFileSync(file, `${admin === null ? '' : `admin: { listen: "127.0.0.1:${admin}" }\n`}log: { level: info, format: json }
shutdown_grace: 500ms
shutdown_delay: 0s
frontends:
${Object.entries(fes).map(([n, p]) => `  - { name: ${n}, listen: "127.0.0.1:${p}", backend: lic }`).join('\n')}
backends:
  - name: lic
    check: { type: none }
    servers: [{ name: s1, address: "127.0.0.1:1" }]
`);
  return file;
}

/** `licgate run --config file`, once it has logged "licgate started". */
export async function startedRun(file: string, cleanup: (() => Promise<void> | void)[]): Promise<RunProcess> {
  const p = spawnRun(file, cleanup);
  await waitFor(() => p.logs.find((l) => l.msg === 'licgate started'), { timeoutMs: 15_000, what: 'licgate started' });
  return p;
}

/** Resolves once 127.0.0.1:port accepts a connection; rejects on a refusal. */
export function connects(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve();
    });
    s.once('error', reject);
  });
}
