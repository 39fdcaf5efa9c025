/**
 * Seeded random sessions through a real licgate (the CLI) to a real upstream. Each client and each
 * server connection follows its own random schedule: writes of 1 B – 512 KiB at random times in
 * both directions at once, a pause of its reads (backpressure), a half-close or a reset (before the
 * upstream connect, while the other side is paused, after its own FIN), a header split across the
 * in-band STATUS sniff, or an in-band STATUS request. Every stream is a pattern known from its
 * first 8 bytes (who sent it), so each byte is checked where it lands.
 *
 * Another run: RELAY_SEEDS=7,8,9 RELAY_SESSIONS=40 CI=true npx vitest run test/integration/relay-random.test.ts
 */
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProxy, startTcpServer, stopAll, type LogLine, type ProxyProcess } from '../helpers/proxy-harness.js';
import { parseSamples } from '../helpers/prom-text.js';
import { sleep, waitFor } from '../helpers/wait-for.js';

afterAll(() => stopAll());

const SEEDS = (process.env.RELAY_SEEDS ?? '1,2,3').split(',').map(Number);
const SESSIONS = Number(process.env.RELAY_SESSIONS ?? 24);
const KiB = 1024;
const MiB = 1024 * KiB;
/** A reset must reach the other side (and end the session) this long after it could be noticed. */
const PROMPT_MS = 3000;
/** The flood session pushes this much at a server that does not read. */
const FLOOD = 64 * MiB;
/** licgate's RSS may grow this much over its idle size while the flood waits. */
const RSS_BOUND = 40 * MiB;
const HEADER = 8;

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const int = (rng: () => number, lo: number, hi: number): number => lo + Math.floor(rng() * (hi - lo + 1));

/** The bytes every stream is cut from: stream `key` starts at its own offset; each lap is xored with its number. */
const PLEN = 1_048_573;
const PATTERN = (() => {
  const rng = mulberry32(0x5eed);
  const b = Buffer.alloc(PLEN);
  for (let i = 0; i < PLEN; i++) b[i] = Math.floor(rng() * 256);
  return b;
})();

/** Writes bytes [o, o + dst.length) of stream `key` (after its header) into dst. */
function fillStream(dst: Buffer, key: number, o: number): void {
  const base = Math.imul(key + 1, 2654435761) >>> 0;
  for (let i = 0; i < dst.length; ) {
    const p = base + o + i;
    const at = p % PLEN;
    const lap = Math.floor(p / PLEN) & 255;
    const n = Math.min(dst.length - i, PLEN - at);
    PATTERN.copy(dst, i, at, at + n);
    if (lap !== 0) for (let j = i; j < i + n; j++) dst[j]! ^= lap;
    i += n;
  }
}

type Role = 'client' | 'server';
/** The stream a client (its id) or a server connection (its accept index) sends. */
const streamKey = (role: Role, id: number): number => id * 2 + (role === 'client' ? 0 : 1);

function header(role: Role, id: number): Buffer {
  // 'S' first: every client stream is sniffed as a possible STATUS until its third byte.
  const h = Buffer.from(role === 'client' ? 'STc\0\0\0\0\0' : 'SRs\0\0\0\0\0', 'latin1');
  h.writeUInt32BE(id, 4);
  return h;
}

type Op = { delay: number } & ({ kind: 'write'; n: number } | { kind: 'pause'; ms: number } | { kind: 'end' } | { kind: 'reset' });

/** Writes, maybe a pause, then an end, a reset, or an end and a later reset. */
function schedule(rng: () => number): Op[] {
  const delay = (): number => (rng() < 0.3 ? 0 : int(rng, 1, 150));
  const ops: Op[] = [];
  for (let i = int(rng, 0, 6); i > 0; i--) ops.push({ delay: delay(), kind: 'write', n: Math.max(1, Math.floor(Math.exp(rng() * Math.log(512 * KiB)))) });
  if (rng() < 0.4) ops.splice(int(rng, 0, ops.length), 0, { delay: delay(), kind: 'pause', ms: int(rng, 100, 1500) });
  const r = rng();
  if (r < 0.7) ops.push({ delay: delay(), kind: 'end' });
  else if (r < 0.85) ops.splice(int(rng, 0, ops.length), ops.length, { delay: delay(), kind: 'reset' });
  else ops.push({ delay: delay(), kind: 'end' }, { delay: int(rng, 0, 400), kind: 'reset' });
  return ops;
}

/** One end of a session in the test: what it sent, what it got (checked byte by byte), what it saw. */
class Side {
  sent = 0;
  got = 0;
  head = Buffer.alloc(0);
  /** The id in the peer's header: the client this server connection serves, or the server connection this client reached. */
  peerId: number | null = null;
  bad: string | null = null;
  endedAt: number | null = null;
  resetAt: number | null = null;
  pausedUntil = 0;
  sawEndAt: number | null = null;
  gotAtEnd = -1;
  errorAt: number | null = null;
  errorCode: string | null = null;
  closedAt: number | null = null;
  /** Where the expected bytes of each read are built (reused). */
  private scratch = Buffer.alloc(0);

  constructor(
    readonly role: Role,
    readonly id: number,
    readonly sock: Socket,
  ) {
    sock.on('end', () => {
      this.sawEndAt = Date.now();
      this.gotAtEnd = this.got;
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      this.errorAt ??= Date.now();
      this.errorCode ??= e.code ?? e.message;
    });
    sock.on('close', () => (this.closedAt = Date.now()));
  }

  get peerRole(): Role {
    return this.role === 'client' ? 'server' : 'client';
  }

  /** Checks each byte against the peer's stream; `onHeader` when the peer's id is known. */
  verify(onHeader: (peerId: number) => void): void {
    this.sock.on('data', (d: Buffer) => {
      const start = this.got;
      this.got += d.length;
      if (this.bad !== null) return;
      let body = d;
      if (start < HEADER) {
        const take = Math.min(HEADER - start, d.length);
        this.head = Buffer.concat([this.head, d.subarray(0, take)]);
        body = d.subarray(take);
        if (this.head.length < HEADER) return;
        const want = header(this.peerRole, this.head.readUInt32BE(4));
        if (!this.head.equals(want)) {
          this.bad = `${this.role} ${this.id}: header ${this.head.toString('hex')} is no ${this.peerRole}'s`;
          return;
        }
        this.peerId = this.head.readUInt32BE(4);
        onHeader(this.peerId);
      }
      if (body.length === 0) return;
      if (this.scratch.length < body.length) this.scratch = Buffer.alloc(Math.max(body.length, 64 * KiB));
      const want = this.scratch.subarray(0, body.length);
      const o = Math.max(0, start - HEADER);
      fillStream(want, streamKey(this.peerRole, this.peerId!), o);
      if (!want.equals(body)) {
        let i = 0;
        while (want[i] === body[i]) i++;
        this.bad = `${this.role} ${this.id}: byte ${o + i} of ${this.peerRole} ${this.peerId}'s stream differs`;
      }
    });
  }

  write(n: number): void {
    const chunk = Buffer.allocUnsafe(n);
    fillStream(chunk, streamKey(this.role, this.id), this.sent - HEADER);
    this.sent += n;
    this.sock.write(chunk);
  }

  writeHeader(): void {
    this.sent += HEADER;
    this.sock.write(header(this.role, this.id));
  }

  reset(): void {
    this.resetAt = Date.now();
    this.sock.resetAndDestroy();
  }

  /** Runs `ops`; stops at a reset, or once the socket is gone (the peer's reset reached it). */
  async run(ops: Op[]): Promise<void> {
    for (const op of ops) {
      if (op.delay > 0) await sleep(op.delay);
      if (this.sock.destroyed) return;
      if (op.kind === 'write') {
        if (this.endedAt === null) this.write(op.n);
      } else if (op.kind === 'pause') {
        this.sock.pause();
        this.pausedUntil = Date.now() + op.ms;
        setTimeout(() => this.sock.resume(), op.ms);
      } else if (op.kind === 'end') {
        this.endedAt = Date.now();
        this.sock.end();
      } else {
        this.reset();
        return;
      }
    }
  }
}

interface Client {
  side: Side;
  kind: 'flood' | 'status' | 'early-reset' | 'split' | 'plain';
  port: number;
  statusReply: string;
}

/** What a side did and saw, in ms relative to the session's log line: for a failure's message. */
function timeline(s: Side, log: LogLine): string {
  const t = typeof log.time === 'string' ? Date.parse(log.time) : 0;
  const rel = (x: number | null): string => (x === null ? '-' : String(x - t));
  return `${s.role} ${s.id}: sent ${s.sent} got ${s.got} ended ${rel(s.endedAt)} reset ${rel(s.resetAt)} sawEnd ${rel(s.sawEndAt)} err ${s.errorCode}@${rel(s.errorAt)} closed ${rel(s.closedAt)} paused-until ${rel(s.pausedUntil || null)}`;
}

function rssOf(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
  return Number(m![1]) * KiB;
}

/** The seed running now and its server connections (seeds run one after the other through one licgate). */
let seed = 0;
let servers: Side[] = [];
let proxy: ProxyProcess;

beforeAll(async () => {
  const upstream = await startTcpServer((s) => {
    const side = new Side('server', servers.length, s);
    servers.push(side);
    side.writeHeader();
    side.verify((cid) => {
      // The schedule comes from the seed and the client's id: a run replays with its seed.
      const rng = mulberry32(seed * 7919 + cid * 2 + 1);
      const ops = cid === 0 ? floodServer() : schedule(rng);
      void side.run(ops);
    });
    // A connection licgate gave up on before any client byte (the client reset, or was answered
    // in-band) is closed by its server once licgate closes it.
    s.on('end', () => {
      if (side.peerId === null && !s.writableEnded) s.end();
    });
  });
  proxy = await startProxy(`
frontends:
  - { name: fe, listen: "127.0.0.1:0", backend: b }
backends:
  - name: b
    check: { type: none }
    servers: [{ name: s, address: "127.0.0.1:${upstream.port}" }]
`);
});

async function runSeed(): Promise<string> {
  servers = [];
  const logsFrom = proxy.logs.length;
  const pid = proxy.child.pid!;
  const rssBase = rssOf(pid);
  let rssPeak = rssBase;
  const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rssOf(pid))), 25);

  const clients: Client[] = [];
  const rng = mulberry32(seed);
  const started = Array.from({ length: SESSIONS }, (_, id) => {
    const r = rng();
    const kind: Client['kind'] = id === 0 ? 'flood' : r < 0.1 ? 'status' : r < 0.18 ? 'early-reset' : r < 0.3 ? 'split' : 'plain';
    const ops = id === 0 ? floodClient() : schedule(mulberry32(seed * 7919 + id * 2));
    const startDelay = int(rng, 0, 300);
    const splitDelay = int(rng, 0, 2600);
    return sleep(startDelay).then(() => {
      const sock = connect({ host: '127.0.0.1', port: proxy.port, allowHalfOpen: true });
      const c: Client = { side: new Side('client', id, sock), kind, port: 0, statusReply: '' };
      clients.push(c);
      sock.on('connect', () => {
        c.port = sock.localPort!;
        if (kind === 'status') {
          sock.setEncoding('latin1');
          sock.on('data', (d: string) => (c.statusReply += d));
          sock.on('end', () => sock.end());
          const line = id % 2 ? 'STATUS\r\n' : 'STATUS\n';
          c.side.sent = line.length;
          sock.write(line.slice(0, 3));
          setTimeout(() => sock.write(line.slice(3)), splitDelay % 300);
          return;
        }
        c.side.verify(() => {});
        if (kind === 'early-reset') {
          // Before licgate's upstream connect completes, with or without the header sent.
          if (id % 2) c.side.writeHeader();
          c.side.reset();
          return;
        }
        if (kind === 'split') {
          // "ST" is a STATUS prefix: licgate holds it until the third byte, or forwards it at SNIFF_TIMEOUT_MS.
          c.side.sent = 2;
          sock.write(header('client', id).subarray(0, 2));
          setTimeout(() => {
            if (sock.destroyed) return;
            c.side.sent = HEADER;
            sock.write(header('client', id).subarray(2));
            void c.side.run(ops);
          }, splitDelay);
          return;
        }
        c.side.writeHeader();
        void c.side.run(ops);
      });
    });
  });
  await Promise.all(started);
  const all = (): Side[] => [...clients.map((c) => c.side), ...servers];
  await waitFor(() => all().every((s) => s.closedAt !== null), {
    timeoutMs: 20_000,
    intervalMs: 50,
    what: `seed ${seed}: every socket closed`,
  }).catch((e: Error) => {
    const open = all()
      .filter((s) => s.closedAt === null)
      .map((s) => `${s.role} ${s.id} (peer ${s.peerId}, sent ${s.sent}, got ${s.got}, ended ${s.endedAt !== null}, saw end ${s.sawEndAt !== null})`);
    throw new Error(`${e.message}\nstill open: ${open.join('; ')}`);
  });
  clearInterval(sampler);

  const problems: string[] = [];
  const bad = (what: string): void => void problems.push(what);
  for (const s of all()) if (s.bad) bad(s.bad);

  // Pair clients with server connections by the header either side received; both must agree.
  const serverOf = new Map<number, Side>();
  for (const s of servers) if (s.peerId !== null) serverOf.set(s.peerId, s);
  for (const c of clients) {
    if (c.side.peerId === null) continue;
    const s = servers[c.side.peerId]!;
    if (s.peerId !== null && s.peerId !== c.side.id) bad(`client ${c.side.id} got server ${s.id}'s stream, which got client ${s.peerId}'s`);
    serverOf.set(c.side.id, s);
  }

  const seedLogs = (): LogLine[] => proxy.logs.slice(logsFrom).filter((l) => l.msg === 'session closed');
  await waitFor(() => seedLogs().length >= clients.length, {
    timeoutMs: 5000,
    what: `seed ${seed}: a "session closed" line per client`,
  }).catch(() => undefined);
  const lines = seedLogs();
  if (lines.length !== clients.length) bad(`${lines.length} "session closed" lines for ${clients.length} clients`);
  const timeOf = (l: LogLine): number => (typeof l.time === 'string' ? Date.parse(l.time) : Number(l.time));

  for (const c of clients) {
    const cs = c.side;
    const ss = serverOf.get(cs.id) ?? null;
    // A server connection no client byte reached sent its header (licgate may have read it).
    const mine = lines.filter((l) => l.client === `127.0.0.1:${c.port}`);
    const tag = `seed ${seed} client ${cs.id} (${c.kind}, server ${ss?.id ?? '-'})`;
    // A client that reset before licgate accepted it is logged with client "-".
    if (mine.length > 1 || (mine.length === 0 && cs.resetAt === null)) {
      bad(`${tag}: ${mine.length} "session closed" lines`);
      continue;
    }
    const log = mine[0];
    if (c.kind === 'status') {
      // The server speaks first: its header may have been relayed while licgate waited for the line.
      const at = c.statusReply.indexOf('Server Status: Running\r\n');
      const before = c.statusReply.slice(0, Math.max(0, at));
      if (at < 0 || before.length > HEADER || !header('server', 0).toString('latin1').startsWith(before.slice(0, 4))) bad(`${tag}: STATUS reply ${JSON.stringify(c.statusReply)}`);
      if (log && (log.end !== 'status' || log.bytes_in !== cs.sent || log.bytes_out !== c.statusReply.length)) bad(`${tag}: log ${JSON.stringify(log)}, got ${c.statusReply.length}`);
      continue;
    }
    const resets = [cs, ss].filter((s): s is Side => s !== null && s.resetAt !== null);
    const sentBack = ss?.sent ?? HEADER;
    if (resets.length === 0) {
      // Exact delivery both ways, each FIN after all the bytes before it.
      if (ss === null) {
        bad(`${tag}: no server connection got its stream`);
        continue;
      }
      if (cs.gotAtEnd !== ss.sent || cs.got !== ss.sent) bad(`${tag}: got ${cs.got} (${cs.gotAtEnd} at the end) of the server's ${ss.sent}`);
      if (ss.gotAtEnd !== cs.sent || ss.got !== cs.sent) bad(`${tag}: server got ${ss.got} (${ss.gotAtEnd} at the end) of ${cs.sent}`);
      if (cs.errorCode || ss.errorCode) bad(`${tag}: errors ${cs.errorCode} / ${ss.errorCode} without a reset`);
      if (log && (log.end !== 'closed' || log.bytes_in !== cs.sent || log.bytes_out !== ss.sent)) bad(`${tag}: log ${JSON.stringify(log)}, sent ${cs.sent}/${ss.sent}`);
      continue;
    }
    // Up to a reset: a prefix of what was sent, and the log counts between what arrived and what was sent.
    if (cs.got > sentBack) bad(`${tag}: got ${cs.got} of ${sentBack}`);
    if (ss && ss.got > cs.sent) bad(`${tag}: server got ${ss.got} of ${cs.sent}`);
    const firstReset = Math.min(...resets.map((s) => s.resetAt!));
    const readyAt = Math.max(firstReset, cs.pausedUntil, ss?.pausedUntil ?? 0);
    // The other side of each reset hears of it (a reset, or the FIN licgate had sent it) in time.
    for (const r of resets) {
      const other = r === cs ? ss : cs;
      if (other === null || other.resetAt !== null) continue;
      const heard = [other.sawEndAt, other.errorAt, other.closedAt].filter((t): t is number => t !== null);
      const at = heard.length ? Math.min(...heard) : Infinity;
      if (at > Math.max(r.resetAt!, other.pausedUntil) + PROMPT_MS) bad(`${tag}: ${other.role} heard of the ${r.role}'s reset after ${at - r.resetAt!} ms`);
    }
    if (!log) continue;
    if (timeOf(log) > readyAt + PROMPT_MS) bad(`${tag}: session closed ${timeOf(log) - firstReset} ms after the first reset`);
    const ends = new Set<unknown>();
    if (cs.resetAt !== null) ends.add('client-reset').add('client-gone');
    if (ss?.resetAt != null) ends.add('server-reset');
    // A reset after its own FIN, or after licgate sent it the other side's (a FIN then closes that
    // socket too, TIME_WAIT: Relay.peerGone), may end the session as closed.
    const other = (s: Side): Side | null => (s === cs ? ss : cs);
    if (resets.every((s) => s.endedAt !== null || (other(s)?.endedAt ?? Infinity) < s.resetAt!)) ends.add('closed');
    if (!ends.has(log.end)) bad(`${tag}: log end ${String(log.end)}, resets by ${resets.map((s) => s.role).join(', ')} (${timeline(cs, log)}; ${ss ? timeline(ss, log) : ''})`);
    const bytesIn = Number(log.bytes_in);
    const bytesOut = Number(log.bytes_out);
    if (bytesIn > cs.sent || (ss && bytesIn < ss.got)) bad(`${tag}: log bytes_in ${bytesIn}, sent ${cs.sent}, server got ${ss?.got}`);
    if (bytesOut > sentBack || bytesOut < cs.got) bad(`${tag}: log bytes_out ${bytesOut}, server sent ${sentBack}, client got ${cs.got}`);
  }
  // Server connections no client stream reached were closed as their clients went (checked above: all closed).

  const st = await proxy.status();
  if (st.frontends.some((f) => f.active !== 0)) bad(`/status frontends: ${JSON.stringify(st.frontends)}`);
  if (st.backends.some((b) => b.servers.some((s) => s.active !== 0))) bad(`/status servers: ${JSON.stringify(st.backends)}`);
  const active = parseSamples((await proxy.get('/metrics')).body).filter((s) => s.name === 'licgate_connections_active');
  if (active.some((s) => s.value !== 0)) bad(`licgate_connections_active: ${JSON.stringify(active)}`);
  if (rssPeak - rssBase > RSS_BOUND) bad(`licgate RSS grew ${((rssPeak - rssBase) / MiB).toFixed(1)} MiB over ${(rssBase / MiB).toFixed(1)} MiB`);

  expect(problems).toEqual([]);
  const resets = all().filter((s) => s.resetAt !== null).length;
  return `seed ${seed}: ${clients.length} sessions, ${servers.length} server connections, ${resets} resets, RSS +${((rssPeak - rssBase) / MiB).toFixed(1)} MiB`;
}

/** Session 0: FLOOD bytes at a server that reads nothing for 2.5 s; licgate must not hold them. */
function floodClient(): Op[] {
  const ops: Op[] = [];
  for (let n = 0; n < FLOOD; n += 512 * KiB) ops.push({ delay: 0, kind: 'write', n: 512 * KiB });
  ops.push({ delay: 0, kind: 'end' });
  return ops;
}

function floodServer(): Op[] {
  return [
    { delay: 0, kind: 'pause', ms: 2500 },
    { delay: 2600, kind: 'end' },
  ];
}

describe('relay under random schedules', () => {
  it.each(SEEDS)('seed %i: every byte arrives in order, FINs and resets pass, nothing is left open', async (s) => {
    seed = s;
    const summary = await runSeed();
    console.log(summary);
  });
});
