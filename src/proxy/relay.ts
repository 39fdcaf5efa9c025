import { bulkBuffers, busyBuffers } from '../io/read-buffer-pool.js';
import { errnoCode, lastWriteWasAsync, newShutdownReq, newWriteReq, readOffset, readResult, UV_EOF, type ShutdownReq, type SockAddr, type TcpHandle, type WriteReq } from '../io/tcp-handle.js';

export type EndReason = 'closed' | 'client-reset' | 'server-reset' | 'client-error' | 'server-error' | 'idle-timeout' | 'shutdown' | 'server-down' | 'admin';

/** Told once, when the relay has closed both handles. */
export interface RelayOwner {
  /** `error`: the errno code of an end that is neither a close nor a reset (ETIMEDOUT: a peer that vanished). */
  relayDone(relay: Relay, reason: EndReason, error?: string): void;
}

const kFlow = Symbol('licgate.flow');
/** A read this big says the direction carries bulk data: from then on it reads into a pooled bulk buffer. */
const BULK_READ = 16 * 1024;
/**
 * This many reads between two of the frontend's once-a-second sweeps say the direction is busy
 * with small messages: from then on it reads into a pooled busy buffer. A license session's
 * checkout and heartbeats stay far below (a few dozen messages when it starts, then one every
 * minute or so), so quiet sessions keep Node's per-read allocation and their idle memory.
 */
export const BUSY_READS = 64;
type FlowHandle = TcpHandle & { [kFlow]: Flow };
type FlowWriteReq = WriteReq & { flow: Flow | null };
type FlowShutdownReq = ShutdownReq & { flow: Flow };

/**
 * One direction of a relay: bytes read from `from` are written to `to`. At most one write is ever
 * in flight: when libuv cannot finish a write at once, `from` stops reading until it has (the
 * backpressure a slow reader needs, with nothing buffered in licgate but that one chunk).
 */
export class Flow {
  /** `from` sent its FIN. */
  eof = false;
  /** A write to `to` is still being flushed by libuv. */
  inflight = false;
  /** We sent our FIN to `to`. */
  shut = false;
  bytes = 0;
  /** Reads since the frontend's last sweep, counted until the direction has a read buffer. */
  reads = 0;
  other!: Flow;
  /** The pooled buffer `from` reads into, once the direction turned out busy or bulk; null: Node allocates per read. */
  private readBuffer: Uint8Array | null = null;
  /** Kept after the switch to a bulk buffer: a write still in flight may point into it. */
  private busyBuffer: Uint8Array | null = null;
  /**
   * The last view of readBuffer handed to a write, reused while reads keep their length: request/
   * response traffic repeats sizes, and a fresh view per read was most of the keep-alive garbage
   * (a scavenge every ~40 ms at 90k requests/s, each a pause every open session waits through).
   * Safe to reuse: no read lands in the buffer while a write of it is in flight.
   */
  private view: Uint8Array | null = null;

  constructor(
    readonly relay: Relay,
    readonly from: TcpHandle,
    readonly to: TcpHandle,
    readonly fromSide: 'client' | 'server',
  ) {}

  get done(): boolean {
    return this.eof && !this.inflight;
  }

  /** Reads from `from` begin; `pending` are bytes read before (sent first), `eof` says its FIN came with them. */
  start(pending: Uint8Array | null = null, eof = false): void {
    const h = this.from as FlowHandle;
    h[kFlow] = this;
    h.onread = onFlowRead;
    if (pending && pending.length) {
      this.write(pending);
      if (this.relay.closed) return;
    }
    if (eof) this.ended();
    else if (!this.inflight) h.readStart();
  }

  write(data: Uint8Array): void {
    const req = spareWrite;
    req.flow = this;
    const err = this.to.writeBuffer(req, data);
    if (err !== 0) {
      req.flow = null;
      this.relay.fail(this.other, err);
      return;
    }
    if (!lastWriteWasAsync()) {
      req.flow = null;
      return;
    }
    // libuv owns this request (and points at `data`) until oncomplete: the next write needs a new one.
    req.buffer = data;
    spareWrite = newFlowWrite();
    this.inflight = true;
    this.from.readStop();
  }

  /**
   * From the next read on, `from` reads into a pooled buffer (busy, or bulk: see the pools). Called
   * inside onread, after the write of what was just read: that write may still point at the old
   * memory, so a busy buffer replaced by a bulk one stays with this flow until release.
   */
  useReadBuffer(bulk: boolean): void {
    if (this.readBuffer !== null && (!bulk || this.readBuffer.length === bulkBuffers.size)) return;
    if (this.readBuffer !== null) this.busyBuffer = this.readBuffer;
    this.readBuffer = (bulk ? bulkBuffers : busyBuffers).take();
    this.view = null;
    this.from.useUserBuffer(this.readBuffer);
  }

  readFromBuffer(n: number): void {
    const buf = this.readBuffer!;
    let view = this.view;
    if (view === null || view.length !== n) view = this.view = buf.subarray(0, n);
    this.write(view);
    // A busy direction that fills its buffer carries bulk data after all.
    if (n === buf.length && buf.length === busyBuffers.size && !this.relay.closed) this.useReadBuffer(true);
  }

  /**
   * After `from` was closed, and `to` was closed or has no write in flight (see ReadBufferPool.give);
   * with `pooled` false the buffers are dropped for the garbage collector instead.
   */
  releaseReadBuffer(pooled = true): void {
    if (this.readBuffer !== null) (this.readBuffer.length === bulkBuffers.size ? bulkBuffers : busyBuffers).give(this.readBuffer, pooled);
    if (this.busyBuffer !== null) busyBuffers.give(this.busyBuffer, pooled);
    this.readBuffer = null;
    this.busyBuffer = null;
    this.view = null;
  }

  ended(): void {
    // libuv reports a reset that came with the last bytes as an EOF (POLLHUP after a partial read);
    // passed on as a FIN, the other peer took a crash for a clean close. After a FIN the socket
    // still has its peer name, after a reset none; once we sent ours, a FIN closes it too
    // (TIME_WAIT, see Relay.peerGone), so only before that.
    const err = this.other.shut ? 0 : this.from.getpeername(peerName);
    if (err !== 0) {
      // A write to `from` still in flight fails with the socket's own error in this same poll (libuv
      // reads before it writes) and fails the relay; a probe would only queue behind it.
      if (!this.other.inflight) this.relay.fail(this, closedSocketError(this.from, err));
      return;
    }
    this.eof = true;
    if (!this.inflight) this.finish();
  }

  /**
   * `from` has said all it will and all of it reached `to`: pass the FIN on. When the other
   * direction is finished too, close() says it all (its FIN included); a shutdown(2) first would
   * only cost a system call on every short session.
   */
  finish(): void {
    if (this.other.done) {
      this.relay.close('closed');
      return;
    }
    if (this.shut) return;
    this.shut = true;
    const req = newShutdownReq(onShutdownDone) as FlowShutdownReq;
    req.flow = this;
    const err = this.to.shutdown(req);
    if (err !== 0) this.relay.fail(this.other, err);
  }
}

let spareWrite = newFlowWrite();
const probeByte = new Uint8Array(1);

/**
 * Why the kernel closed the socket of `h` (getpeername only says that it did): a reset (EPIPE, as
 * Linux reports a reset after the peer's FIN) or a keepalive timeout (ETIMEDOUT). That error waits
 * in the socket, and a write to a closed socket returns it without sending anything; a read would
 * not (it reports the FIN first). Only for a half-closed relay whose peer is gone; `fallback` if
 * the write somehow does not fail.
 */
function closedSocketError(h: TcpHandle, fallback: number): number {
  const err = h.writeBuffer(probeWrite, probeByte);
  if (err < 0) return err;
  // libuv owns a request that went asynchronous until it completes: the next probe needs a new one.
  if (lastWriteWasAsync()) probeWrite = newWriteReq(ignoreWrite);
  return fallback;
}

let probeWrite = newWriteReq(ignoreWrite);

function ignoreWrite(): void {
  // A probe's outcome is read from writeBuffer's return; the relay is closed by then.
}

/** getpeername's output in sweep(), shared: only whether it fails matters. */
const peerName: SockAddr = {};

function newFlowWrite(): FlowWriteReq {
  const req = newWriteReq(onWriteDone) as FlowWriteReq;
  req.flow = null;
  return req;
}

/**
 * One client↔server pair on raw libuv handles. A FIN is forwarded as a half-close (license
 * clients and daemons both rely on it), a reset as a reset. Nothing here allocates or logs per
 * chunk beyond the view of the bytes read (and a request when a write goes asynchronous); the
 * callbacks are shared functions that find their flow on the handle or request.
 */
export class Relay {
  readonly toServer: Flow;
  private readonly toClient: Flow;
  private reason: EndReason = 'closed';
  private clientStarted = false;
  closed = false;
  /** Bytes moved since the last idle sweep looked (see Frontend). */
  active = true;
  idleMs = 0;

  constructor(
    readonly client: TcpHandle,
    readonly server: TcpHandle,
    private readonly owner: RelayOwner,
  ) {
    this.toServer = new Flow(this, client, server, 'client');
    this.toClient = new Flow(this, server, client, 'server');
    this.toServer.other = this.toClient;
    this.toClient.other = this.toServer;
    this.toClient.start();
  }

  /** Bytes read from the client by the relay (the session adds what it read before). */
  get clientBytes(): number {
    return this.toServer.bytes;
  }

  get serverBytes(): number {
    return this.toClient.bytes;
  }

  /**
   * Starts client→server once in-band STATUS sniffing has decided this is real traffic. `pending`
   * holds the client bytes read before; `clientEof` says the client's FIN came with them.
   */
  startClient(pending: Uint8Array | null, clientEof: boolean): void {
    if (this.clientStarted || this.closed) return;
    this.clientStarted = true;
    this.toServer.start(pending, clientEof);
  }

  /**
   * In-band STATUS arrived after the upstream connect: close the server side quietly and give the
   * client handle back (the owner will not be told).
   */
  dropServer(): void {
    this.closed = true;
    this.server.close();
    // The client stays open for the reply: a write of server bytes to it may still point into the buffer.
    this.toClient.releaseReadBuffer(!this.toClient.inflight);
  }

  /**
   * The frontend's once-a-second sweep: read counting starts over, and a peer that libuv does not
   * poll is checked. libuv stops polling a socket at its FIN, and while a write of its bytes to the
   * other side is pending (that side does not read), so that peer's reset (or a keepalive timeout)
   * would surface only when the other side next sent or read something: a silent or stalled other
   * side held the session and its server slot for good. A socket the kernel has closed has no peer
   * name any more; one getpeername a second, and only while a relay is half-closed or under
   * backpressure at the sweep.
   */
  sweep(): void {
    this.toServer.reads = 0;
    this.toClient.reads = 0;
    if (!this.closed && !this.peerGone(this.toServer)) this.peerGone(this.toClient);
  }

  /** Fails the relay if `f.from` is a peer libuv does not poll (see sweep) and the kernel has closed its socket. */
  private peerGone(f: Flow): boolean {
    // Once we have sent `f.from` our FIN, its own FIN closes the socket cleanly (TIME_WAIT leaves no
    // peer name) while its last bytes may still wait unread behind a pending write: not a reset.
    if ((!f.eof && !f.inflight) || f.other.shut) return false;
    const err = f.from.getpeername(peerName);
    if (err === 0) return false;
    // With a write in flight to that peer, it would have failed already; without, ask the socket why.
    this.fail(f, f.other.inflight ? err : closedSocketError(f.from, err));
    return true;
  }

  /** Ends the session from our side (shutdown grace expired, an admin's shutdown-sessions, idle timeout, its server marked DOWN). */
  abort(reason: EndReason): void {
    this.reason = reason;
    this.close(reason);
  }

  /** An error on the handle `failed` is the read side of (or, for a write, `failed.other` is the write side of). */
  fail(failed: Flow, errno: number): void {
    if (this.closed) return;
    const code = errnoCode(errno);
    const isReset = code === 'ECONNRESET' || code === 'EPIPE';
    // A reset says itself; another error needs its code in the record: ETIMEDOUT (a host that
    // vanished, found by keepalive or by retransmissions) and EHOSTUNREACH call for other fixes.
    let error: string | undefined;
    if (this.reason === 'closed') {
      this.reason = failed.fromSide === 'client' ? (isReset ? 'client-reset' : 'client-error') : isReset ? 'server-reset' : 'server-error';
      if (!isReset) error = code;
    }
    // Pass a reset on as a reset, so the peer sees what a direct connection would have shown it.
    // Not once we have sent the peer our FIN: libuv refuses to reset a handle that is shutting
    // down (uv_tcp_close_reset → EINVAL); it is closed instead.
    const peer = failed.to;
    this.closed = true;
    failed.from.close();
    if (!isReset || failed.shut || peer.reset() !== 0) peer.close();
    this.releaseReadBuffers();
    this.owner.relayDone(this, this.reason, error);
  }

  close(reason: EndReason): void {
    if (this.closed) return;
    this.closed = true;
    if (this.reason === 'closed') this.reason = reason;
    this.client.close();
    this.server.close();
    this.releaseReadBuffers();
    this.owner.relayDone(this, this.reason);
  }

  private releaseReadBuffers(): void {
    this.toServer.releaseReadBuffer();
    this.toClient.releaseReadBuffer();
  }
}

// Shared by every relay: `this` is the handle that was read.
function onFlowRead(this: FlowHandle, buf: ArrayBuffer | undefined): void {
  const f = this[kFlow];
  const n = readResult();
  if (n > 0) {
    f.bytes += n;
    f.relay.active = true;
    if (buf === undefined) {
      f.readFromBuffer(n);
      return;
    }
    f.write(new Uint8Array(buf, readOffset(), n));
    if (f.relay.closed) return;
    if (n >= BULK_READ) f.useReadBuffer(true);
    else if (++f.reads >= BUSY_READS) f.useReadBuffer(false);
    return;
  }
  if (n === 0 || f.relay.closed) return;
  if (n === UV_EOF) f.ended();
  else f.relay.fail(f, n);
}

function onWriteDone(this: FlowWriteReq, status: number): void {
  const f = this.flow!;
  this.flow = null;
  this.buffer = null;
  if (f.relay.closed) return;
  f.inflight = false;
  if (status < 0) {
    f.relay.fail(f.other, status);
    return;
  }
  if (f.eof) f.finish();
  else f.from.readStart();
}

function onShutdownDone(this: FlowShutdownReq, status: number): void {
  const f = this.flow;
  if (status < 0 && !f.relay.closed) f.relay.fail(f.other, status);
}
