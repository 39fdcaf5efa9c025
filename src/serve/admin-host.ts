import { isIP } from 'node:net';
import { isLoopback } from '../config/address.js';

/**
 * DNS rebinding guard for a loopback admin listener: a hostile web page whose name the attacker
 * re-points at 127.0.0.1 is same-origin with licgate for the browser, so it could read /status,
 * /metrics and the stats page. Such a request carries the attacker's name in Host; local tools,
 * ssh tunnels and the stats page send an IP literal or localhost. Returns the refused host name,
 * or null when the request may go on.
 *
 * A listener on another address is left alone: Prometheus and HAProxy reach it by names licgate
 * cannot know, and its read-only routes are open to the network anyway.
 */
export function foreignHost(header: string | undefined, listenHost: string): string | null {
  // No Host is an HTTP/1.0 tool: a browser always sends one.
  if (header === undefined || !isLoopback(listenHost)) return null;
  // "[::1]:8404", "127.0.0.1:8404", "licgate.example.com." (a trailing dot names the same host).
  const name = (header.startsWith('[') ? header.slice(1, header.indexOf(']')) : header.replace(/:\d*$/, '')).toLowerCase().replace(/\.$/, '');
  if (isIP(name) !== 0 || name === 'localhost' || name.endsWith('.localhost') || name === listenHost.toLowerCase()) return null;
  return name;
}
