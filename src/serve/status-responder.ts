import type { HostPort } from '../config/address.js';
import { LineServer } from '../io/line-server.js';
import type { Backend } from '../model/backend.js';
import { renderStatus } from './status-reply.js';

/**
 * HAProxy's checks take milliseconds, so this is room for hundreds of checks a second; it keeps a
 * flood of silent peers from taking the descriptors the frontends need (see LineServer).
 */
export const MAX_PEERS = 128;

/** The STATUS line protocol on `status.listen`: what HAProxy's tcp-check asks a sidecar or proxy. */
export function createStatusResponder(listen: HostPort, backend: () => Backend, onReject?: (why: string) => void): LineServer {
  return new LineServer(listen, {
    what: 'status',
    maxLine: 256,
    timeoutMs: 5000,
    maxConnections: MAX_PEERS,
    answer: (line) => (line.trim().toUpperCase() === 'STATUS' ? renderStatus(backend()) : `ERROR expected "STATUS", got "${line.slice(0, 40)}"\r\n`),
    ...(onReject ? { onReject } : {}),
  });
}
