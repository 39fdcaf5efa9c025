import { appendBytes } from '../io/append-bytes.js';
import type { Linked } from '../io/intrusive-list.js';
import { readOffset, readResult, UV_EOF, type TcpHandle } from '../io/tcp-handle.js';
import type { ClientPeer } from './session.js';
import { sniffStatus } from './status-sniff.js';

/** What a waiting client's frontend does for it (see Frontend.accept). */
export interface WaitingOwner {
  /** In-band STATUS on now (a reload may change it while clients wait). */
  readonly inbandStatus: boolean;
  /** queue_timeout expired. */
  giveUp(w: Waiting): void;
  /** The first bytes were an in-band STATUS request: answered now, not after a slot frees. */
  statusWhileWaiting(w: Waiting): void;
  /** The client reset, failed, or closed without sending anything while waiting: its place in the queue is freed. */
  leftWhileWaiting(w: Waiting): void;
}

/**
 * A waiting client is read only this far. A license client's first message is a few hundred bytes
 * and it then waits for the answer, so its reset or FIN is still seen; a flood of queued clients
 * (max_queue is 10,000 by default) cannot move more than this plus one read each from the kernel's
 * buffers into licgate's memory. HAProxy holds one buffer (tune.bufsize, 16 KiB) per queued client.
 */
const WAITING_READ_LIMIT = 4096;

const kWaiting = Symbol('licgate.waiting');
type WaitingHandle = TcpHandle & { [kWaiting]: Waiting };

/**
 * An accepted client waiting for a session slot. It is read while it waits, so a client that gives
 * up (a FIN with nothing before it, or a reset, as HAProxy notices by reading queued clients too)
 * leaves the queue at once instead of costing the license server a connection for nobody when its
 * turn comes; `option abortonclose` is HAProxy's name for the FIN case. With in-band STATUS on, a
 * health check (HAProxy's tcp-check on the clients' port) is answered at once instead of after a
 * slot frees, so a full proxy does not look dead. Other bytes are kept for the session, so what a
 * license client sent is relayed as it is and it still waits for its slot. Reading stops at
 * WAITING_READ_LIMIT.
 */
export class Waiting implements Linked<Waiting> {
  /** Its place in its frontend's wait list. */
  listPrev: Waiting | null = null;
  listNext: Waiting | null = null;
  private readonly timer: NodeJS.Timeout;
  /** performance.now(), as a session's start. */
  readonly since = performance.now();
  /** Client bytes read while waiting, for the session: the first chunk itself, then a view of `store`. */
  early: Buffer | null = null;
  /** Where the chunks after the first are appended (appendBytes). */
  private store: Buffer | null = null;
  /** The client's FIN came while waiting. */
  eof = false;
  private reading = false;
  constructor(
    private readonly owner: WaitingOwner,
    readonly client: TcpHandle,
    /** The client's address, read at accept: a client that resets while waiting has none by its record. */
    readonly peer: ClientPeer,
    queueTimeout: number,
  ) {
    this.timer = setTimeout(() => owner.giveUp(this), queueTimeout);
    (client as WaitingHandle)[kWaiting] = this;
    client.onread = onWaitingRead;
    this.reading = client.readStart() === 0;
  }

  /** Its turn came: the handle goes to a session (with `early` and `eof`). */
  take(): TcpHandle {
    clearTimeout(this.timer);
    this.stopReading();
    return this.client;
  }

  drop(): void {
    clearTimeout(this.timer);
    this.client.close();
  }

  data(chunk: Buffer): void {
    let buf = chunk;
    if (this.early !== null) {
      this.store = appendBytes(this.store, this.early, chunk, WAITING_READ_LIMIT);
      buf = this.store.subarray(0, this.early.length + chunk.length);
    }
    this.early = buf;
    const verdict = this.owner.inbandStatus ? sniffStatus(buf) : 'other';
    if (verdict === 'status') {
      clearTimeout(this.timer);
      this.stopReading();
      this.owner.statusWhileWaiting(this);
    } else if (buf.length >= WAITING_READ_LIMIT) this.stopReading();
  }

  ended(): void {
    // Nothing sent: the client gave up. After bytes it is a half-close, relayed with them as in a session.
    if (this.early === null) {
      this.failed();
      return;
    }
    this.eof = true;
    this.stopReading();
  }

  failed(): void {
    clearTimeout(this.timer);
    this.stopReading();
    this.owner.leftWhileWaiting(this);
  }

  private stopReading(): void {
    if (!this.reading) return;
    this.reading = false;
    this.client.readStop();
  }
}

function onWaitingRead(this: WaitingHandle, buf: ArrayBuffer | undefined): void {
  const n = readResult();
  if (n > 0) this[kWaiting].data(Buffer.from(buf!, readOffset(), n));
  else if (n === UV_EOF) this[kWaiting].ended();
  else if (n < 0) this[kWaiting].failed();
}
