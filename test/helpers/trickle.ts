/**
 * A server that trickles a long reply, as a slow or hostile target does: `reply` less its last
 * `trickled` bytes at once, then the rest `chunk` bytes per write, one write per turn of the event
 * loop, so that a reader in this process gets each write as a read of its own. Stops when the
 * stream is destroyed (the check closed it).
 */
export function trickle(out: { write(b: Buffer): unknown; destroyed: boolean }, reply: Buffer, trickled: number, chunk = 16): void {
  let at = reply.length - trickled;
  out.write(reply.subarray(0, at));
  const next = (): void => {
    if (out.destroyed || at >= reply.length) return;
    out.write(reply.subarray(at, at + chunk));
    at += chunk;
    setImmediate(next);
  };
  setImmediate(next);
}

/** `length` bytes of filler that end in `tail`. */
export function endingIn(length: number, tail: string): Buffer {
  const b = Buffer.alloc(length, 'x');
  b.write(tail, length - Buffer.byteLength(tail));
  return b;
}

/** What `run` resolved to, and the CPU time (user + system, ms) this process used meanwhile. */
export async function withCpuMs<T>(run: () => Promise<T>): Promise<{ result: T; cpuMs: number }> {
  const before = process.cpuUsage();
  const result = await run();
  const used = process.cpuUsage(before);
  return { result, cpuMs: (used.user + used.system) / 1000 };
}
