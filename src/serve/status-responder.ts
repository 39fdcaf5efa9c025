import type { HostPort } from '../config/address.js';
import { LineServer, type LineServerOptions } from '../io/line-server.js';
import { MAX_CONTROL_PEERS } from '../io/listen.js';
import type { OnRefused } from '../io/peers-by-address.js';
import type { Backend } from '../model/backend.js';
import { renderStatus } from './status-reply.js';

/** Longest STATUS request line, terminator included; a longer one gets the peer cut off. */
export const STATUS_MAX_LINE = 256;
/** A peer with no full line this long after connecting is cut off. */
export const STATUS_TIMEOUT_MS = 5000;

/** The STATUS line protocol on `status.listen`: what HAProxy's tcp-check asks a sidecar or proxy. */
export function createStatusResponder(listen: HostPort, backend: () => Backend, onReject?: LineServerOptions['onReject'], onRefused?: OnRefused): LineServer {
  return new LineServer(listen, {
    what: 'status',
    maxLine: STATUS_MAX_LINE,
    timeoutMs: STATUS_TIMEOUT_MS,
    maxConnections: MAX_CONTROL_PEERS,
    answer: (line) => (line.trim().toUpperCase() === 'STATUS' ? renderStatus(backend()) : `ERROR expected "STATUS", got "${line.slice(0, 40)}"\r\n`),
    ...(onReject ? { onReject } : {}),
    ...(onRefused ? { onRefused } : {}),
  });
}
