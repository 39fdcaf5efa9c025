import { getSystemErrorMap } from 'node:util';
import { UnsupportedRuntimeError } from '../errors.js';

/**
 * libuv TCP handles as Node exposes them to its own net module (`tcp_wrap`, `stream_wrap`).
 *
 * Why not net.Socket: a Socket is a full Duplex stream (two state objects, an event emitter, a
 * timer list entry) around one of these handles. For a proxy that only moves bytes from one handle
 * to another that machinery is most of the cost: `npm run bench` measured a bare net `pipe()`
 * proxy at 155 µs of CPU and 6.4 KB of memory per connection, and the same proxy on these handles
 * at 66 µs and 2.6 KB (HAProxy: 40 µs, 3.2 KB).
 *
 * The bindings are Node internals: the same in Node 20 and 24 (CI runs every test on both), used
 * by Node's own net.js and stream_base_commons.js exactly as here. `process.binding` is deprecated
 * in documentation only (DEP0111) and still allows these two. Their shape is checked once at
 * startup, so a Node that changes it fails with a clear error instead of misbehaving; the
 * net.Socket data plane this replaced is at commit 1e601e9.
 */

/**
 * Callbacks are called by native code with `this` = the handle or request; they are typed
 * `this: never` so that each caller can declare the owner it stores on that object.
 */
export interface TcpHandle {
  /** Bytes read: see readResult/readOffset. */
  onread: ((this: never, buf: ArrayBuffer | undefined) => void) | null;
  onconnection: ((this: never, status: number, client?: TcpHandle) => void) | null;
  readStart(): number;
  readStop(): number;
  /** From now on reads land in `buf` (onread gets no ArrayBuffer; the bytes are at 0..n). */
  useUserBuffer(buf: Uint8Array): void;
  writeBuffer(req: WriteReq, data: Uint8Array): number;
  shutdown(req: ShutdownReq): number;
  /** The callback runs with `this` = the handle, on a later loop turn; the descriptor is closed at once. */
  close(cb?: (this: never) => void): void;
  /** Close with RST (SO_LINGER 0); refused (non-zero) once a shutdown is under way. */
  reset(cb?: (this: never) => void): number;
  setNoDelay(on: boolean): number;
  /** The delay is in seconds. */
  setKeepAlive(on: boolean, delaySecs: number): number;
  getpeername(out: SockAddr): number;
  getsockname(out: SockAddr): number;
  bind(host: string, port: number): number;
  bind6(host: string, port: number, flags: number): number;
  listen(backlog: number): number;
  connect(req: ConnectReq, host: string, port: number): number;
  connect6(req: ConnectReq, host: string, port: number): number;
}

export interface SockAddr {
  address?: string;
  family?: string;
  port?: number;
}

/** `this` in oncomplete is the request; a request whose write went asynchronous belongs to libuv until then. */
export interface WriteReq {
  oncomplete: (this: never, status: number) => void;
  /** Keeps the bytes alive while libuv still points at them (native code holds no reference). */
  buffer: Uint8Array | null;
}

export interface ShutdownReq {
  oncomplete: (this: never, status: number) => void;
}

export interface ConnectReq {
  oncomplete: (this: never, status: number, handle: TcpHandle) => void;
}

interface TcpWrapBinding {
  TCP: new (type: number) => TcpHandle;
  TCPConnectWrap: new () => ConnectReq;
  constants: { SOCKET: number; SERVER: number };
}

interface StreamWrapBinding {
  WriteWrap: new () => WriteReq;
  ShutdownWrap: new () => ShutdownReq;
  streamBaseState: Int32Array;
  kReadBytesOrError: number;
  kArrayBufferOffset: number;
  kLastWriteWasAsync: number;
}

function load(): { tcp: TcpWrapBinding; stream: StreamWrapBinding } {
  const found = `Node ${process.version}`;
  let tcp: Partial<TcpWrapBinding>;
  let stream: Partial<StreamWrapBinding>;
  try {
    const binding = (process as unknown as { binding(name: string): unknown }).binding;
    tcp = binding('tcp_wrap') as TcpWrapBinding;
    stream = binding('stream_wrap') as StreamWrapBinding;
  } catch (err) {
    throw new UnsupportedRuntimeError(`${found}, where process.binding fails: ${(err as Error).message}`);
  }
  const missing: string[] = [];
  if (typeof tcp.TCP !== 'function') missing.push('tcp_wrap.TCP');
  if (typeof tcp.TCPConnectWrap !== 'function') missing.push('tcp_wrap.TCPConnectWrap');
  if (typeof tcp.constants?.SOCKET !== 'number' || typeof tcp.constants.SERVER !== 'number') missing.push('tcp_wrap.constants');
  if (typeof stream.WriteWrap !== 'function') missing.push('stream_wrap.WriteWrap');
  if (typeof stream.ShutdownWrap !== 'function') missing.push('stream_wrap.ShutdownWrap');
  if (!(stream.streamBaseState instanceof Int32Array)) missing.push('stream_wrap.streamBaseState');
  for (const k of ['kReadBytesOrError', 'kArrayBufferOffset', 'kLastWriteWasAsync'] as const) {
    if (typeof stream[k] !== 'number') missing.push(`stream_wrap.${k}`);
  }
  if (typeof tcp.TCP === 'function') {
    const proto = tcp.TCP.prototype as Record<string, unknown>;
    for (const m of ['readStart', 'readStop', 'useUserBuffer', 'writeBuffer', 'shutdown', 'close', 'reset', 'setNoDelay', 'setKeepAlive', 'getpeername', 'getsockname', 'bind', 'bind6', 'listen', 'connect', 'connect6']) {
      if (typeof proto[m] !== 'function') missing.push(`TCP.prototype.${m}`);
    }
  }
  if (missing.length) throw new UnsupportedRuntimeError(`${found} without ${missing.join(', ')}`);
  return { tcp: tcp as TcpWrapBinding, stream: stream as StreamWrapBinding };
}

const { tcp, stream } = load();

const { TCP, TCPConnectWrap, constants } = tcp;
const { WriteWrap, ShutdownWrap, streamBaseState: state, kReadBytesOrError, kArrayBufferOffset, kLastWriteWasAsync } = stream;

/** libuv's UV_EOF: the peer sent its FIN. */
export const UV_EOF = -4095;

export function newSocketHandle(): TcpHandle {
  return new TCP(constants.SOCKET);
}

export function newServerHandle(): TcpHandle {
  return new TCP(constants.SERVER);
}

export function newConnectReq(): ConnectReq {
  return new TCPConnectWrap();
}

export function newWriteReq(oncomplete: WriteReq['oncomplete']): WriteReq {
  const req = new WriteWrap();
  req.oncomplete = oncomplete;
  req.buffer = null;
  return req;
}

export function newShutdownReq(oncomplete: ShutdownReq['oncomplete']): ShutdownReq {
  const req = new ShutdownWrap();
  req.oncomplete = oncomplete;
  return req;
}

/** Inside onread: bytes read (> 0), UV_EOF, another negative errno, or 0 (nothing, ignore). */
export function readResult(): number {
  return state[kReadBytesOrError]!;
}

/** Inside onread with a positive result: where the bytes start in the ArrayBuffer handed over. */
export function readOffset(): number {
  return state[kArrayBufferOffset]!;
}

/** Right after writeBuffer returned 0: is libuv still writing (the request is pending)? */
export function lastWriteWasAsync(): boolean {
  return state[kLastWriteWasAsync] !== 0;
}

const errnoNames = getSystemErrorMap();

/** A libuv errno (negative) as Node's own errors show it: code, errno, syscall. */
export function errnoError(errno: number, syscall: string, detail = ''): NodeJS.ErrnoException {
  const [code, text] = errnoNames.get(errno) ?? [`Unknown system error ${errno}`, 'unknown error'];
  const err = new Error(`${syscall} ${code}${detail ? ` ${detail}` : ''}: ${text}`) as NodeJS.ErrnoException;
  err.code = code;
  err.errno = errno;
  err.syscall = syscall;
  return err;
}

/** The errno's code, e.g. 'ECONNRESET'. */
export function errnoCode(errno: number): string {
  return errnoNames.get(errno)?.[0] ?? `E${-errno}`;
}
