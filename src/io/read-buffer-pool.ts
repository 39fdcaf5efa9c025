/**
 * Read buffers for busy relay directions. A direction that reads a big chunk gets one of these
 * (TcpHandle.useUserBuffer) instead of the fresh 64 KiB ArrayBuffer Node allocates for every read:
 * at gigabit rates those allocations, and the garbage collections their external memory triggers,
 * cost more than the copying. Quiet license sessions never take one, so idle memory is not spent.
 *
 * The size is measured, not guessed (`node bench/run.mjs --tests bulk --rounds 3 --only
 * haproxy,licgate`, iperf3, licgate/HAProxy): 64 KiB 0.58×, 128 KiB 0.97×, 256 KiB 1.08×. Bigger
 * reads cut the system calls and the trips through the event loop per byte. A bulk session holds
 * at most two (512 KiB) until it closes.
 */
export const READ_BUFFER_SIZE = 256 * 1024;
/** Free buffers kept for reuse (4 MiB); the rest are left to the garbage collector. */
const KEEP = 16;

const free: Uint8Array[] = [];

export function takeReadBuffer(): Uint8Array {
  return free.pop() ?? new Uint8Array(READ_BUFFER_SIZE);
}

/** Only once the handle that read into it is closed: libuv reads no more into it after uv_close. */
export function giveReadBuffer(buf: Uint8Array): void {
  if (free.length < KEEP) free.push(buf);
}
