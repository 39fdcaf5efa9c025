import { connect, type Socket } from 'node:net';

/**
 * A host that floods a control port: `count` connections from `localAddress` (another loopback
 * address, 127.0.0.2, so the test's own requests come from a different peer) that send nothing and
 * never close, even after the server's FIN; with `send`, each sends it once connected (garbage a
 * server must cut off) and nothing more. `closed()` counts those the server has cut off so far (a FIN
 * or reset before any reply); `destroy()` ends them all.
 */
export interface PeerFlood {
  closed(): number;
  destroy(): void;
}

export async function peerFlood(port: number, count: number, localAddress = '127.0.0.2', send?: string): Promise<PeerFlood> {
  const sockets: Socket[] = [];
  let closed = 0;
  await Promise.all(
    Array.from({ length: count }, () => {
      const sock = connect({ host: '127.0.0.1', port, localAddress, allowHalfOpen: true });
      sockets.push(sock);
      let replied = false;
      let cut = false;
      const onCut = (): void => {
        if (!replied && !cut) closed++;
        cut = true;
      };
      sock.on('data', () => (replied = true));
      sock.on('error', () => {});
      sock.on('end', onCut);
      sock.on('close', onCut);
      return new Promise<void>((resolve) => {
        sock.once('connect', () => {
          if (send !== undefined) sock.write(send);
          resolve();
        });
        sock.once('close', resolve);
      });
    }),
  );
  return {
    closed: () => closed,
    destroy: () => {
      for (const s of sockets) s.destroy();
    },
  };
}
