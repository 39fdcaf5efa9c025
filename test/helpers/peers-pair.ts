import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './free-port.js';
import { startProxy, type ProxyProcess } from './proxy-harness.js';

/** GET /status's `peers` (PeerSync.status()), as the tests of what shows it read it. */
export interface PeersStatus {
  listen: string;
  remotes: { remote: string; connected: boolean; state: string; since: string; last_error: string | null; entries_sent: number }[];
  incoming: { peer: string; connected: boolean; received: number; applied: number; kept: number; unstuck: number; skipped: number; cut_off: number }[];
}

export interface PeersPair {
  /** Pushes to b and to each of `extraRemotes`. */
  a: ProxyProcess;
  /** Pushes to a only. */
  b: ProxyProcess;
  peerPorts: { a: number; b: number };
  /** Removes the token file's directory (stopAll() stops the processes). */
  cleanup(): void;
}

/**
 * Two `licgate run` processes whose `peers` sections name each other on 127.0.0.1, each with one
 * `stick: source` backend so there is a table to share; a's `remotes` also list `extraRemotes`
 * (127.0.0.1 ports: a closed one, a fake listener).
 */
export async function startPeersPair(extraRemotes: number[] = []): Promise<PeersPair> {
  const dir = mkdtempSync(join(tmpdir(), 'licgate-peers-pair-'));
  const token = join(dir, 'peers.token');
  writeFileSync(token, 'peers-pair-token-0123456789abcdef\n', { mode: 0o600 });
  const peerPorts = { a: await freePort(), b: await freePort() };
  const yaml = (mine: number, remotes: number[]): string => `peers:
  listen: 127.0.0.1:${mine}
  remotes: [${remotes.map((p) => `127.0.0.1:${p}`).join(', ')}]
  token_file: ${token}
backends:
  - name: licenses
    stick: source
    check: { type: none }
    servers: [{ name: a, address: "127.0.0.1:1" }]
`;
  const a = await startProxy(yaml(peerPorts.a, [peerPorts.b, ...extraRemotes]));
  const b = await startProxy(yaml(peerPorts.b, [peerPorts.a]));
  return { a, b, peerPorts, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function peersOf(p: ProxyProcess): Promise<PeersStatus> {
  return ((await p.get('/status')).json as { peers: PeersStatus }).peers;
}
