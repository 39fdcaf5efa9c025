import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { processState } from './process-group.js';
import { waitFor } from './wait-for.js';

/**
 * A black-holed server on 127.0.0.1 without iptables or a namespace: a child process listens with
 * a backlog of 1 and stops itself (SIGSTOP), so nothing accepts; the kernel completes handshakes
 * only until the accept queue is full, and drops every later SYN (tcp_conn_request: accept queue
 * full → drop), as a server behind a dead path would. The queue is filled here, and those
 * connections are held until stop().
 */
export interface SilentListener {
  port: number;
  /** Lets the process run again: it accepts what waits, and late SYN retransmits get through. */
  resume(): void;
  stop(): Promise<void>;
}

const CHILD = `
const net = require('node:net');
const srv = net.createServer((s) => s.on('error', () => {}));
srv.listen({ host: '127.0.0.1', port: 0, backlog: 1 }, () => {
  process.stdout.write(srv.address().port + '\\n'); // a pipe: written before the next line runs (Linux)
  process.kill(process.pid, 'SIGSTOP');
});`;

export async function startSilentListener(): Promise<SilentListener> {
  const child: ChildProcess = spawn(process.execPath, ['-e', CHILD], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const port = await waitFor(() => Number(/^(\d+)\n/.exec(out)?.[1] ?? 0), { timeoutMs: 10_000, intervalMs: 10, what: 'the silent listener to print its port' });
  await waitFor(() => processState(child.pid!) === 'T', { timeoutMs: 5000, intervalMs: 10, what: 'the silent listener to stop itself' });
  const held = await fillAcceptQueue('127.0.0.1', port, 16);
  return {
    port,
    resume: () => child.kill('SIGCONT'),
    async stop() {
      for (const s of held) s.destroy();
      if (child.exitCode === null && child.signalCode === null) {
        const exited = once(child, 'exit');
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

/**
 * Fills the accept queue of a listener that is not accepting (its process stopped): connects
 * complete until it is full, and the first one that does not is the proof that the next SYN is
 * dropped. Returns the connections, which the caller holds (and destroys) to keep it full.
 */
export async function fillAcceptQueue(host: string, port: number, max: number): Promise<Socket[]> {
  const held: Socket[] = [];
  for (let i = 0; ; i++) {
    if (i > max) {
      for (const s of held) s.destroy();
      throw new Error(`${host}:${port} still completes connects after ${i} (accept queue never filled)`);
    }
    const s = connect(port, host);
    s.on('error', () => {});
    held.push(s);
    const completed = await Promise.race([once(s, 'connect').then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 300))]);
    if (!completed) return held;
  }
}
