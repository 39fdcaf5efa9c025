import { isIP, SocketAddress } from 'node:net';

/**
 * The eight 16-bit groups of an IPv6 address `isIP` accepts (no zone): `::` expanded, and an
 * embedded IPv4 tail (::ffff:10.1.2.3) as its two groups. For prefixes: a /64 share, a network.
 */
export function ipv6Groups(addr: string): number[] {
  let text = addr;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::', 2) as [string, string | undefined];
  const groups = head === '' ? [] : head.split(':');
  if (tail !== undefined) {
    const after = tail === '' ? [] : tail.split(':');
    groups.push(...Array<string>(8 - groups.length - after.length).fill('0'), ...after);
  }
  return groups.map((g) => parseInt(g, 16));
}

export interface HostPort {
  host: string;
  port: number;
}

/**
 * Parses `host:port`, `[v6]:port` or `v6-literal` forms. Returns an error string (what was expected)
 * instead of throwing so the config loader can position it.
 */
export function parseHostPort(text: string, opts: { allowPortZero?: boolean } = {}): HostPort | string {
  let host: string;
  let portText: string;
  const bracket = /^\[([^\]]+)\]:(\d+)$/.exec(text);
  if (bracket) {
    host = bracket[1]!;
    portText = bracket[2]!;
    if (isIP(host) !== 6) return `expected an IPv6 address inside [], found "${host}"`;
    // RFC 6874's %25 escapes '%' in a URL, not here, where "%25eth0" would name an interface
    // "25eth0" and fail to bind or connect (EINVAL) long after validation said nothing.
    const url = /^([^%]*)%25(.+)$/.exec(host);
    if (url) return `expected an interface name after %, found "%25${url[2]}" (%25 is how a URL writes %): write [${url[1]}%${url[2]}]:${portText}`;
  } else {
    if (text.startsWith('[')) return `expected [IPv6 address]:port, e.g. [::1]:27000, found "${text}"`;
    const i = text.lastIndexOf(':');
    if (i <= 0) return `expected host:port (e.g. 10.0.0.11:27000 or [::1]:27000), found "${text}"`;
    host = text.slice(0, i);
    portText = text.slice(i + 1);
    if (host.includes(':')) return unbracketed(text, host, portText);
  }
  if (host !== '*' && !isIP(host) && !isHostName(host)) return `expected an IP address or host name, found "${host}"`;
  if (!/^\d+$/.test(portText)) return `expected a port number after ':', found "${portText}"`;
  const port = Number(portText);
  const min = opts.allowPortZero ? 0 : 1;
  if (port < min || port > 65535) return `expected a port ${min}-65535, found ${port}`;
  if (host === '*') host = '0.0.0.0';
  // Kept in one spelling, so that a reload compares meaning: [::0] to [::] changes nothing.
  return { host: canonicalHost(host), port };
}

/**
 * An IPv6 address written without brackets: its last ':' may start the port or be part of the
 * address (fd00::11:2700 is an address too), so the suggestion must not split an address that has
 * no port (2001:db8::1 is not [2001:db8:]:1).
 */
function unbracketed(text: string, host: string, portText: string): string {
  // A zone (%eth0) ends an address: what follows its last ':' can only be a port.
  if (isIP(text) !== 6 || host.includes('%')) return `expected an IPv6 address in brackets, e.g. [${host}]:${portText}`;
  if (isIP(host) === 6) return `expected an IPv6 address in brackets: "${text}" is either [${host}]:${portText} or the address ${text} without a port`;
  return `expected [IPv6 address]:port, found the address "${text}" without a port; e.g. [${text}]:27000`;
}

const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** RFC 1123 host name; an all-numeric last label (RFC 3696), such as in 10.0.0.300, is a bad IPv4 address instead. */
function isHostName(host: string): boolean {
  const labels = host.replace(/\.$/, '').split('.');
  return host.length <= 253 && labels.every((l) => LABEL.test(l)) && !/^\d+$/.test(labels[labels.length - 1]!);
}

export function formatHostPort(hp: HostPort): string {
  return isIP(hp.host) === 6 ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

/** Where a socket is bound (its address()), in the form of a listen address: `[::1]:8404`. */
export function formatBound(a: { address: string; port: number }): string {
  return formatHostPort({ host: a.address, port: a.port });
}

/**
 * Why `a` and `b` cannot both listen, or null when they can. Linux refuses a second listener on a
 * port that a wildcard address holds, and Node binds [::] dual-stack, so it holds IPv4 too. A zone
 * tells two links apart (fe80::1%eth0 and fe80::1%eth1 both bind); an IPv4-mapped address
 * (::ffff:10.0.0.1) binds the IPv4 one, so it clashes where that would.
 */
export function listenClash(a: HostPort, b: HostPort): string | null {
  if (a.port !== b.port || a.port === 0) return null;
  const [x, y] = [boundHost(a.host), boundHost(b.host)];
  if (x === y) return canonicalHost(a.host) === canonicalHost(b.host) ? 'the same address' : `[::ffff:${x}] binds ${x}`;
  for (const [wild, other] of [[x, y], [y, x]] as const) {
    if (wild === '::') return isIP(other) === 6 ? '[::] takes every IPv6 address' : '[::] takes IPv4 too';
    // A host name may resolve to either family; most resolve to IPv4 (localhost included).
    if (wild === '0.0.0.0' && isIP(other) !== 6) return '0.0.0.0 takes every IPv4 address';
  }
  return null;
}

/**
 * One spelling per IPv6 address ([::0] is [::], 2001:DB8::1 is 2001:db8::1), its zone kept as
 * written: an interface name is case-sensitive. Other hosts are returned as they are.
 */
function canonicalHost(host: string): string {
  if (isIP(host) !== 6) return host;
  const zone = host.indexOf('%');
  const address = new SocketAddress({ address: zone < 0 ? host : host.slice(0, zone), family: 'ipv6' }).address;
  return zone < 0 ? address : address + host.slice(zone);
}

/**
 * lmstat prints whatever name the license file's SERVER line used, which is often the short name
 * while the sidecar knows its FQDN (or the other way round).
 */
export function sameHost(a: string, b: string): boolean {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  if (x === y) return true;
  // "10.0.0.1" and "10.0.0.2" share a first label; short-name matching only makes sense for names.
  const ip = /^[\d.]+$|:/;
  if (ip.test(x) || ip.test(y)) return false;
  return x.split('.')[0] === y.split('.')[0];
}

/**
 * The one of `items` whose host (`hostOf`) is `host`: spelt the same in any case, else the only one
 * sameHost takes for it. Undefined when none is, or when several share its short name and none is
 * spelt the same: a triad at three sites may be flexlm.ber.example.com, flexlm.muc.example.com and
 * flexlm.ham.example.com, and the first with a matching short name is not the one meant.
 */
export function findHost<T>(items: readonly T[], host: string, hostOf: (item: T) => string): T | undefined {
  const h = host.toLowerCase();
  const exact = items.find((i) => hostOf(i).toLowerCase() === h);
  if (exact !== undefined) return exact;
  const loose = items.filter((i) => sameHost(hostOf(i), host));
  return loose.length === 1 ? loose[0] : undefined;
}

/**
 * Whether two hosts written as text are one address ([::0] and [::], FD00:0::11 and fd00::11). A
 * zone counts only when both name one: an address listed without it is on whichever link has it.
 */
export function sameAddress(a: string, b: string): boolean {
  const [x, y] = [canonicalHost(a), canonicalHost(b)];
  if (x === y) return true;
  const [xa, xz] = x.split('%');
  const [ya, yz] = y.split('%');
  return xa === ya && (xz === undefined || yz === undefined);
}

/**
 * The address a listener on `host` takes: an IPv4-mapped IPv6 address takes the IPv4 one. Also
 * the stick-table key of a client at `host` (session.ts clientAddress writes it so).
 */
export function boundHost(host: string): string {
  const c = canonicalHost(host);
  return c.startsWith('::ffff:') && isIP(c.slice(7)) === 4 ? c.slice(7) : c;
}

/** Whether a listen host takes every address of its family (0.0.0.0 or ::): it names none to connect from. */
export function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::';
}

/**
 * Whether a listen or server host is this machine's loopback. Only addresses count, and the name
 * localhost: a name like 127.0.0.1.nip.io merely starts like one and may resolve anywhere.
 */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  const v = isIP(host);
  if (v === 4) return host.startsWith('127.');
  if (v !== 6) return false;
  const a = canonicalHost(host);
  return a === '::1' || a.startsWith('::1%') || /^::ffff:127\./.test(a);
}
