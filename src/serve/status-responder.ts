import type { HostPort } from '../config/address.js';
import { LineServer } from '../io/line-server.js';
import { MAX_CONTROL_PEERS } from '../io/listen.js';
import type { OnRefused } from '../io/peers-by-address.js';
import type { Backend } from '../model/backend.js';
import { renderStatus } from './status-reply.js';

/** The STATUS line protocol on `status.listen`: what HAProxy's tcp-check asks a sidecar or proxy. */
export function createStatusResponder(listen: HostPort, backend: () => Backend, onReject?: (why: string) => void, onRefused?: OnRefused): LineServer {
  return new LineServer(listen, {
    what: 'status',
    maxLine: 256,
    timeoutMs: 5000,
    maxConnections: MAX_CONTROL_PEERS,
    answer: (line) => (line.trim().toUpperCase() === 'STATUS' ? renderStatus(backend()) : `ERROR expected "STATUS", got "${line.slice(0, 40)}"\r\n`),
    ...(onReject ? { onReject } : {}),
    ...(onRefused ? { onRefused } : {}),
  });
}
