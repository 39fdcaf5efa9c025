import { createServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import type { TcpHandle } from '../../src/io/tcp-handle.js';
import { Backend } from '../../src/model/backend.js';
import { ModelEvents } from '../../src/model/events.js';
import type { Server } from '../../src/model/server.js';
import { Connector, type ConnectFailure, type ConnectOwner } from '../../src/proxy/connector.js';
import { waitFor } from '../helpers/wait-for.js';

// The connector in this process against real listeners on 127.0.0.1, for what the proxy process
// cannot be made to do on cue: stall its event loop.

const listeners: NetServer[] = [];
const accepted: Socket[] = [];
afterEach(async () => {
  for (const s of accepted.splice(0)) s.destroy();
  await Promise.all(listeners.splice(0).map((l) => new Promise((r) => l.close(r))));
});

async function listener(): Promise<number> {
  const l = createServer((s) => accepted.push(s.on('error', () => {})));
  listeners.push(l);
  await new Promise<void>((r) => l.listen(0, '127.0.0.1', r));
  return (l.address() as AddressInfo).port;
}

/** Two live servers, a and b, in one tier; `options` are backend options (YAML, indented 4). */
async function backend(options: string): Promise<Backend> {
  const [a, b] = [await listener(), await listener()];
  const cfg = loadConfigText(`status: { listen: "127.0.0.1:0" }
backends:
  - name: l
    check: { type: none }
${options}
    servers:
      - { name: a, address: "127.0.0.1:${a}", weight: 2 }
      - { name: b, address: "127.0.0.1:${b}", weight: 1 }
`);
  return new Backend(cfg.backends[0]!, new ModelEvents());
}

/** Records what a Session would be told. */
class Owner implements ConnectOwner {
  server: Server | null = null;
  failure: ConnectFailure | null = null;
  readonly failedAttempts: string[] = [];
  readonly races: string[] = [];
  connected(handle: TcpHandle, server: Server): void {
    handle.close();
    this.server = server;
  }
  failed(f: ConnectFailure): void {
    this.failure = f;
  }
  attemptFailed(server: Server, reason: string): void {
    this.failedAttempts.push(`${server.name}: ${reason}`);
  }
  attemptRaced(slow: Server, next: Server): void {
    this.races.push(`${slow.name} -> ${next.name}`);
  }
}

/** Blocks the event loop, as a long GC pause or a synchronous call would. */
function stall(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

/** Starts one session's connect, stalls the loop past the delay under test, and waits for its outcome. */
async function connectThroughStall(options: string): Promise<{ b: Backend; owner: Owner; server: Server }> {
  const b = await backend(options);
  const owner = new Owner();
  new Connector(b, '10.1.1.1', null, owner).start();
  stall(300);
  const server = await waitFor(() => owner.server, { timeoutMs: 5000, intervalMs: 5, what: 'the session to connect' });
  return { b, owner, server };
}

describe('Connector after an event-loop stall', () => {
  // The connect to a completes in the kernel at once, but the stall keeps its completion unread
  // past the delay. Timers run before I/O in a turn of libuv's loop: expired there, the attempt
  // would look unanswered though it is done.
  it('does not race a connect that completed during the stall', async () => {
    const { b, owner, server } = await connectThroughStall('    connect_race: 100ms\n    connect_timeout: 5s');
    expect(server.name).toBe('a');
    expect(owner.races).toEqual([]);
    expect(b.server('b')!.active).toBe(0);
    expect(b.server('a')!.overdue).toBe(0);
  });

  it('does not time out a connect that completed during the stall', async () => {
    const { b, owner, server } = await connectThroughStall('    connect_race: 0\n    connect_timeout: 100ms');
    expect(server.name).toBe('a');
    expect(owner.failedAttempts).toEqual([]);
    expect(b.server('a')!.connectErrors).toBe(0);
  });
});
