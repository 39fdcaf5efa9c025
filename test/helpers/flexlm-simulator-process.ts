/**
 * `licgate simulate --flexlm` as real processes, so a test can SIGKILL a license server and start it
 * again on the same ports. Each simulated server gets its own loopback host (127.0.1.x) because
 * FlexLM fixes the vendor daemon's port: every server listens on the same lmgrd and vendor ports,
 * as real license servers do, and the proxy (on 127.0.0.1, the "VIP") uses those same two ports.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { CLI } from './proxy-harness.js';
import { waitFor } from './wait-for.js';

export interface FlexlmServerSpec {
  name: string;
  host: string;
  lmgrdPort: number;
  vendorPort: number;
  tokens?: number;
}

export interface FlexlmSimulatorProcess {
  spec: FlexlmServerSpec;
  child: ChildProcess;
  /** SIGKILL (a crash) and wait for the exit. */
  kill(): Promise<void>;
  /** Start it again on the same host and ports (after kill). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

const started = new Set<FlexlmSimulatorProcess>();

export async function stopFlexlmSimulators(): Promise<void> {
  const all = [...started];
  started.clear();
  await Promise.all(all.map((s) => s.stop()));
}

async function spawnSimulator(spec: FlexlmServerSpec): Promise<ChildProcess> {
  const args = ['simulate', '--flexlm', '--listen', `${spec.host}:${spec.lmgrdPort}`, '--vendor-port', String(spec.vendorPort), '--name', spec.name, '--tokens', String(spec.tokens ?? 1000)];
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  try {
    await waitFor(
      () => {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`exited (${child.exitCode ?? child.signalCode}): ${err.trim()}`);
        return out.includes(`simulator ${spec.name} listening on`);
      },
      { timeoutMs: 10_000, intervalMs: 10, what: `licgate ${args.join(' ')} to listen` },
    );
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  return child;
}

async function terminate(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

export async function startFlexlmSimulator(spec: FlexlmServerSpec): Promise<FlexlmSimulatorProcess> {
  const proc: FlexlmSimulatorProcess = {
    spec,
    child: await spawnSimulator(spec),
    kill: () => terminate(proc.child, 'SIGKILL'),
    async restart() {
      await terminate(proc.child, 'SIGKILL');
      proc.child = await spawnSimulator(spec);
    },
    async stop() {
      started.delete(proc);
      await terminate(proc.child, 'SIGTERM');
    },
  };
  started.add(proc);
  return proc;
}

/** A port that is free on `host` now (the FlexLM tests then use it on 127.0.0.1 and 127.0.1.x). */
export { freePort } from './free-port.js';
