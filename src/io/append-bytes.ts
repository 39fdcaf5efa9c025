/**
 * `held` followed by `chunk`, for bytes a client sends before they can be passed on (while it waits
 * for a slot, or for the upstream connect) and for a check's reply (ReplyReader). `store` is the
 * buffer the last call returned (null before the first), and `held` its first bytes; the result is
 * the store to keep, whose first `held.length + chunk.length` bytes are the whole. A new store at
 * least doubles (up to `limit`; past it only to fit the read that reaches it, after which the
 * caller stops reading), so a client that trickles its bytes one segment at a time costs each byte
 * a copy or two: Buffer.concat per read copies everything before it each time, about 8 MB for
 * 4 KiB and 2 GB for 64 KiB.
 */
export function appendBytes(store: Buffer | null, held: Buffer, chunk: Buffer, limit: number): Buffer {
  const used = held.length;
  const need = used + chunk.length;
  if (store === null || need > store.length) {
    // Unpooled: a slice of Node's shared 8 KiB slab would keep the whole slab alive while the client waits.
    const grown = Buffer.allocUnsafeSlow(need > limit ? need : Math.min(limit, Math.max(need, 2 * used, 64)));
    held.copy(grown, 0, 0, used);
    store = grown;
  }
  chunk.copy(store, used);
  return store;
}
