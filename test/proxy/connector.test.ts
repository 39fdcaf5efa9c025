import { createServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import type { TcpHandle } from '../../src/io/tcp-handle.js';
import { Backend } from '../../src/model/backend.js';
import { ModelEvents } from '../../src/model/events.js';
import { Model } from '../../src/model/model.js';
import type { Server } from '../../src/model/server.js';
import { Connector, type ConnectFailure, type ConnectOwner } from '../../src/proxy/connector.js';
import { adoptServers, handOverBackends } from '../../src/reload.js';
import { startSilentListener } from '../helpers/silent-listener.js';
import { waitFor } from '../helpers/wait-for.js';

// The connector in this process against real listeners on 127.0.0.1, for what the proxy process
// cannot be made to do on cue: stall its event loop.

const listeners: NetServer[] = [];
const accepted: Socket[] = [];
afterEach(async () => {
  for (const s of accepted.splice(0)) s.destroy();
  await Promise.all(listeners.splice(0).map((l) => new Promise((r) => l.close(r))));
});

async function listener(port = 0): Promise<number> {
  const l = createServer((s) => accepted.push(s.on('error', () => {})));
  listeners.push(l);
  await new Promise<void>((r) => l.listen(port, '127.0.0.1', r));
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

/** A port nothing listens on (connects are refused) that can be listened on later. */
async function refusingPort(): Promise<number> {
  const port = await listener();
  await new Promise((r) => listeners.pop()!.close(r));
  return port;
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

describe('Connector for a second step (a server_port frontend) with stick: source', () => {
  it('races a client without a stick entry away from a black-holed server and places the next one elsewhere at once; a client with an entry waits for its server', async () => {
    // FlexLM fixes the vendor port, so the servers differ by host: a black hole on 127.0.0.1, a
    // listener on 127.0.1.2 at the same port.
    const silent = await startSilentListener();
    const live = createServer((s) => accepted.push(s.on('error', () => {})));
    listeners.push(live);
    await new Promise<void>((r) => live.listen(silent.port, '127.0.1.2', r));
    const connectors: Connector[] = [];
    try {
      const cfg = loadConfigText(`status: { listen: "127.0.0.1:0" }
backends:
  - name: l
    stick: source
    check: { type: none }
    connect_race: 100ms
    connect_timeout: 20s
    servers:
      - { name: a, address: "127.0.0.1:${silent.port}", weight: 100 }
      - { name: b, address: "127.0.1.2:${silent.port}", weight: 1 }
`);
      const b = new Backend(cfg.backends[0]!, new ModelEvents());
      const start = (key: string): Owner => {
        const o = new Owner();
        const c = new Connector(b, key, silent.port, o);
        connectors.push(c);
        c.start();
        return o;
      };
      const outcome = (o: Owner, what: string): Promise<string> => waitFor(() => o.server?.name ?? o.failure?.reason, { timeoutMs: 5000, intervalMs: 5, what });
      // No entry (expired, licgate restarted, table full): no server holds its ticket.
      const first = start('10.0.0.1');
      expect(await outcome(first, 'the first vendor connection to be raced to b')).toBe('b');
      expect(first.races).toEqual(['a -> b']);
      const second = start('10.0.0.2');
      expect(await outcome(second, 'the second vendor connection placed')).toBe('b');
      expect(second.races).toEqual([]);
      // With an entry on a: its ticket is good there only, so it waits (overdue), unraced.
      b.stick!.set('10.0.0.3', 'a');
      const kept = start('10.0.0.3');
      await waitFor(() => b.server('a')!.overdue === 2, { timeoutMs: 5000, intervalMs: 5, what: 'the kept vendor connect to a to be overdue' });
      expect([kept.server, kept.races, b.server('b')!.total]).toEqual([null, [], 2]);
    } finally {
      for (const c of connectors) c.cancel();
      await silent.stop();
    }
  }, 30_000);
});

describe('Connector in the maxconn queue', () => {
  /** Backend l, one retry, no race, with `servers` (YAML, indented 6); then `more` backends. */
  const queueing = (servers: string, more = ''): Backend[] =>
    loadConfigText(`status: { listen: "127.0.0.1:0" }
backends:
  - name: l
    check: { type: none }
    retries: 1
    connect_race: 0
    queue_timeout: 1500ms
    servers:
${servers}
${more}`).backends.map((c) => new Backend(c, new ModelEvents()));

  it('a slot freed on a server that the oldest waiter already failed on goes to a waiter that can use it', async () => {
    const [pa, pb] = [await refusingPort(), await listener()];
    const [b] = queueing(`      - { name: a, address: "127.0.0.1:${pa}", maxconn: 1 }
      - { name: b, address: "127.0.0.1:${pb}", maxconn: 1 }`) as [Backend];
    const a = b.server('a')!;
    const start = (key: string): Owner => {
      const o = new Owner();
      new Connector(b, key, null, o).start();
      return o;
    };
    // s0 is refused on a and retried on b, where it holds the only slot (slots are released by hand here).
    const s0 = start('10.0.0.1');
    expect((await waitFor(() => s0.server, { timeoutMs: 5000, intervalMs: 5, what: 's0 connected' })).name).toBe('b');
    // w1 is refused on a too; its retry finds b full, so it queues with a on its list of servers tried.
    start('10.0.0.2');
    await waitFor(() => b.queued === 1, { timeoutMs: 5000, intervalMs: 5, what: 'w1 queued' });
    // a comes up; s2 takes its slot; w3 finds both full and queues behind w1.
    await listener(pa);
    const s2 = start('10.0.0.3');
    expect((await waitFor(() => s2.server, { timeoutMs: 5000, intervalMs: 5, what: 's2 connected' })).name).toBe('a');
    const w3 = start('10.0.0.4');
    expect(b.queued).toBe(2);
    // s2 ends. w1 cannot retry a; w3, which never tried it, takes the slot instead of waiting out its queue_timeout.
    b.release(a, '10.0.0.3');
    const outcome = await waitFor(() => w3.server?.name ?? w3.failure?.reason, { timeoutMs: 5000, intervalMs: 5, what: 'w3 served or failed' });
    expect(outcome).toBe('a');
    expect(b.queued).toBe(1);
  });

  it('refused by the only server, which is not full, it is retried there and fails rather than waiting out queue_timeout for a slot', async () => {
    // The last server that can take clients stays eligible after its connect errors (passive health
    // leaves it to the checks: Backend.takesClientsAlone), as does any server of `check: none`. The
    // retry waits the turn-around, min(connect_timeout 3s, 1s), not queue_timeout (1.5 s).
    const [b] = queueing(`      - { name: a, address: "127.0.0.1:${await refusingPort()}", maxconn: 5 }`) as [Backend];
    const owner = new Owner();
    const started = performance.now();
    new Connector(b, '10.0.0.1', null, owner).start();
    const outcome = await waitFor(() => owner.failure?.reason ?? owner.server?.name, { timeoutMs: 5000, intervalMs: 5, what: 'the outcome' });
    expect(outcome).toBe('a: connection refused (after 2 attempts)');
    expect(performance.now() - started).toBeLessThan(1500);
    expect(owner.failedAttempts).toEqual(['a: connection refused', 'a: connection refused']);
    expect(b.queued).toBe(0);
  });

  it('moved by a reload to another backend (placeOn), it may use a server there of the name of one it tried', async () => {
    const [refusing, full, other] = [await refusingPort(), await listener(), await listener()];
    const servers = `      - { name: s1, address: "127.0.0.1:${refusing}", weight: 100 }
      - { name: s2, address: "127.0.0.1:${full}", maxconn: 1 }`;
    const [l, m] = queueing(servers, `  - name: m
    check: { type: none }
    servers:
      - { name: s1, address: "127.0.0.1:${other}" }`) as [Backend, Backend];
    l.acquire(l.server('s2')!, 'holder');
    // Refused on l's s1, its retry finds s2 full: it queues with s1 tried.
    const owner = new Owner();
    const c = new Connector(l, '10.0.0.1', null, owner);
    c.start();
    await waitFor(() => c.queued, { timeoutMs: 5000, intervalMs: 5, what: 'the connection to queue on l' });
    expect(owner.failedAttempts).toEqual(['s1: connection refused']);
    // Its frontend now sends clients to m, whose s1 is another server that it never tried.
    c.placeOn(m);
    expect(await waitFor(() => owner.server?.name ?? owner.failure?.reason, { timeoutMs: 5000, intervalMs: 5, what: 'the outcome on m' })).toBe('s1');
    expect([m.server('s1')!.total, l.queued]).toEqual([1, 0]);
  });
});

describe('Connector with a connect in flight when a reload commits', () => {
  /** Backend l with `servers` (YAML, indented 6), checked by tcp so that passive health applies. */
  const model = (servers: string, options: string): Model =>
    new Model(loadConfigText(`status: { listen: "127.0.0.1:0" }
backends:
  - name: l
    check: { type: tcp }
    connect_race: 0
${options}
    servers:
${servers}
`));

  /** What Daemon's applyConfig does to the model, in the same turn as the connect it overtakes. */
  function reload(old: Model, next: Model): void {
    adoptServers(old, next);
    handOverBackends(old, next);
  }

  async function outcome(owner: Owner): Promise<string> {
    return waitFor(() => owner.server?.name ?? owner.failure?.reason, { timeoutMs: 5000, intervalMs: 5, what: 'the connect outcome' });
  }

  it('its refusal counts on the running server: with observe_errors 2, the next refusal marks that one DOWN', async () => {
    // b, never chosen (weight 1 to a's 100), is there so that a is not the last server that can
    // take clients, which passive health never marks DOWN (Backend.takesClientsAlone).
    const servers = `      - { name: a, address: "127.0.0.1:${await refusingPort()}", weight: 100 }\n      - { name: b, address: "127.0.0.1:${await refusingPort()}", weight: 1 }`;
    const old = model(servers, '    retries: 0\n    observe_errors: 2');
    const next = model(servers, '    retries: 0\n    observe_errors: 2');
    const first = new Owner();
    new Connector(old.backend('l')!, '10.1.1.1', null, first).start();
    reload(old, next);
    expect(await outcome(first)).toBe('a: connection refused (after 1 attempts)');
    const second = new Owner();
    new Connector(next.backend('l')!, '10.1.1.1', null, second).start();
    await outcome(second);
    const a = next.backend('l')!.server('a')!;
    expect([a.connectErrors, a.stateText, a.active]).toEqual([2, 'DOWN', 0]);
  });

  it('its retry chooses among the servers of the running config, not one the reload removed', async () => {
    const [dead, live] = [await refusingPort(), await listener()];
    // a takes the first attempt (weight 100) and refuses it; x, removed by the reload, would accept the retry.
    const a = `      - { name: a, address: "127.0.0.1:${dead}", weight: 100 }`;
    const old = model(`${a}\n      - { name: x, address: "127.0.0.1:${live}", weight: 1 }`, '    retries: 2');
    const next = model(a, '    retries: 2');
    const owner = new Owner();
    new Connector(old.backend('l')!, '10.1.1.1', null, owner).start();
    reload(old, next);
    // No other server is left in the running config: a is retried (after the turn-around), x never.
    expect(await outcome(owner)).toBe('a: connection refused (after 3 attempts)');
    expect(owner.failedAttempts).toEqual(['a: connection refused', 'a: connection refused', 'a: connection refused']);
    expect([old.backend('l')!.server('x')!.total, next.backend('l')!.server('a')!.active]).toEqual([0, 0]);
  });
});

describe('Connector with no server left that it has not tried', () => {
  /** Backend l, no race, with `options` (YAML, indented 4) and `servers` (YAML, indented 6). */
  const single = (options: string, servers: string): Backend =>
    new Backend(
      loadConfigText(`status: { listen: "127.0.0.1:0" }
backends:
  - name: l
    check: { type: none }
    connect_race: 0
${options}
    servers:
${servers}
`).backends[0]!,
      new ModelEvents(),
    );

  const outcome = (o: Owner): Promise<string> => waitFor(() => o.server?.name ?? o.failure?.reason, { timeoutMs: 5000, intervalMs: 5, what: 'the connect outcome' });

  it('refused by the only server (its daemon restarting), it retries that server after the turn-around and connects', async () => {
    const port = await refusingPort();
    const b = single('    retries: 1\n    connect_timeout: 300ms', `      - { name: a, address: "127.0.0.1:${port}" }`);
    const owner = new Owner();
    const started = performance.now();
    new Connector(b, '10.0.0.1', null, owner).start();
    await waitFor(() => owner.failedAttempts.length === 1, { timeoutMs: 5000, intervalMs: 1, what: 'the first connect refused' });
    const refusedAt = performance.now();
    await listener(port);
    expect(await outcome(owner)).toBe('a');
    // HAProxy's turn-around, min(connect_timeout, 1 s): not at once, which would only be refused again.
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    expect(performance.now() - refusedAt).toBeLessThan(1000);
    expect(owner.failedAttempts).toEqual(['a: connection refused']);
  });

  it('a client that leaves during the turn-around is not connected', async () => {
    const port = await refusingPort();
    const b = single('    retries: 1\n    connect_timeout: 200ms', `      - { name: a, address: "127.0.0.1:${port}" }`);
    const owner = new Owner();
    const c = new Connector(b, '10.0.0.1', null, owner);
    c.start();
    await waitFor(() => owner.failedAttempts.length === 1, { timeoutMs: 5000, intervalMs: 1, what: 'the first connect refused' });
    c.cancel();
    await listener(port);
    // Long past the turn-around: no attempt was made for the client that left.
    const until = performance.now() + 600;
    await waitFor(() => performance.now() > until || accepted.length > 0, { timeoutMs: 5000, intervalMs: 10, what: 'the turn-around to pass' });
    expect([accepted.length, b.server('a')!.active, b.server('a')!.total, owner.server, owner.failure]).toEqual([0, 0, 0, null, null]);
  });

  it('its server full when the turn-around ends, it waits in the queue of that server for a slot instead of failing', async () => {
    // HAProxy queues a retry on a full server (assign_server_and_queue puts it in the server's
    // queue); the slot its refused attempt gave back went to another client meanwhile.
    const port = await refusingPort();
    const b = single('    retries: 1\n    connect_timeout: 300ms\n    queue_timeout: 3s', `      - { name: a, address: "127.0.0.1:${port}", maxconn: 1 }`);
    const owner = new Owner();
    new Connector(b, '10.0.0.1', null, owner).start();
    await waitFor(() => owner.failedAttempts.length === 1, { timeoutMs: 5000, intervalMs: 1, what: 'the first connect refused' });
    await listener(port);
    const other = new Owner();
    new Connector(b, '10.0.0.2', null, other).start();
    const a = await waitFor(() => other.server, { timeoutMs: 5000, intervalMs: 1, what: 'another client on the only slot' });
    await waitFor(() => b.queued === 1 || owner.failure !== null, { timeoutMs: 5000, intervalMs: 5, what: 'the turn-around to end' });
    expect(owner.failure?.reason ?? 'queued').toBe('queued');
    // The other client leaves: its slot goes to the waiter, which connects on its retry.
    b.release(a, '10.0.0.2');
    expect(await outcome(owner)).toBe('a');
    expect([owner.failedAttempts, b.queued, a.active]).toEqual([['a: connection refused'], 0, 1]);
  });

  it('put in maint during its second turn-around, its only server fails the client with a reason that counts attempts, not servers', async () => {
    const port = await refusingPort();
    const b = single('    retries: 3\n    connect_timeout: 200ms', `      - { name: a, address: "127.0.0.1:${port}" }`);
    const owner = new Owner();
    new Connector(b, '10.0.0.1', null, owner).start();
    await waitFor(() => owner.failedAttempts.length === 2, { timeoutMs: 5000, intervalMs: 1, what: 'a refused twice' });
    b.server('a')!.setAdmin('maint', 'test');
    expect(await outcome(owner)).toBe('all tried servers failed (2 attempts)');
    expect([owner.failure!.tried, b.server('a')!.active]).toEqual([2, 0]);
  });

  it('retries the last server left, whose errors do not mark it DOWN, but not one its errors marked DOWN', async () => {
    // a (chosen first) refuses and is marked DOWN (b can still take clients); b refuses too, and
    // being the last server left it stays UP (Backend.takesClientsAlone): it is retried, a not.
    const model = new Model(
      loadConfigText(`status: { listen: "127.0.0.1:0" }
backends:
  - name: l
    check: { type: tcp }
    connect_race: 0
    connect_timeout: 100ms
    retries: 2
    observe_errors: 1
    servers:
      - { name: a, address: "127.0.0.1:${await refusingPort()}", weight: 100 }
      - { name: b, address: "127.0.0.1:${await refusingPort()}", weight: 1 }
`),
    );
    const b = model.backend('l')!;
    const owner = new Owner();
    new Connector(b, '10.0.0.1', null, owner).start();
    expect(await outcome(owner)).toBe('b: connection refused (after 3 attempts)');
    expect(owner.failedAttempts).toEqual(['a: connection refused', 'b: connection refused', 'b: connection refused']);
    expect([b.server('a')!.stateText, b.server('b')!.usable]).toEqual(['DOWN', true]);
  });

  it('a kept second step (stick: source) refused by its own server retries that server, not another whose vendor daemon would deny its ticket', async () => {
    // FlexLM fixes the vendor port, so the servers differ by host: a refuses on 127.0.0.1, b
    // accepts on 127.0.1.2 at the same port.
    const port = await refusingPort();
    const other = createServer((s) => accepted.push(s.on('error', () => {})));
    listeners.push(other);
    await new Promise<void>((r) => other.listen(port, '127.0.1.2', r));
    const b = single('    stick: source\n    retries: 2\n    connect_timeout: 300ms', `      - { name: a, address: "127.0.0.1:${port}" }\n      - { name: b, address: "127.0.1.2:${port}" }`);
    b.stick!.set('10.0.0.3', 'a');
    const owner = new Owner();
    new Connector(b, '10.0.0.3', port, owner).start();
    await waitFor(() => owner.failedAttempts.length === 1, { timeoutMs: 5000, intervalMs: 1, what: 'the first connect refused' });
    await listener(port);
    expect(await outcome(owner)).toBe('a');
    expect([b.server('b')!.total, b.stick!.get('10.0.0.3')]).toEqual([0, 'a']);
  });
});
