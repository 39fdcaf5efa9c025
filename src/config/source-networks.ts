import { isIP, SocketAddress } from 'node:net';
import type { Node } from 'yaml';
import { ipv6Groups } from './address.js';
import type { YamlReader } from './yaml-reader.js';

/**
 * A listener's `allow` list: the source networks it accepts, each as `address/prefix` in canonical
 * form (a bare address is its /32 or /128), or undefined after an error. An empty list is an error:
 * it would refuse every client, which nobody writes on purpose (leave the key out to allow all).
 */
export function readAllow(r: YamlReader, n: Node | null, what: string): string[] | undefined {
  const items = r.seq(n, what);
  if (items === undefined) return undefined;
  if (items.length === 0) return r.error(n, `${what}: expected one or more source networks, like [10.0.0.0/8, 2001:db8:17::/48], found an empty list, which would refuse every client; remove "allow" to accept every address`);
  const out: string[] = [];
  items.forEach((item, i) => {
    const entry = readNetwork(r, item, `${what}[${i}]`);
    if (entry !== undefined) out.push(entry);
  });
  return out.length === items.length ? out : undefined;
}

function readNetwork(r: YamlReader, n: Node | null, what: string): string | undefined {
  const text = r.string(n, what);
  if (text === undefined) return undefined;
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  // A zone names a link, not a network: link-local clients are matched by address alone.
  if (addr.includes('%')) return r.error(n, `${what}: expected a network without an interface zone, found "${text}": a zone is not compared (fe80::/10 admits link-local clients on every interface); remove "${addr.slice(addr.indexOf('%'))}"`);
  const family = isIP(addr);
  if (family === 0) return r.error(n, `${what}: expected an IPv4 or IPv6 address or network (10.0.0.0/8, 10.1.2.3, 2001:db8:17::/48), found "${text}"`);
  const bits = family === 4 ? 32 : 128;
  const prefixText = slash < 0 ? String(bits) : text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > bits) return r.error(n, `${what}: expected a prefix length 0-${bits} after "/" for an IPv${family} address, found "${prefixText}"`);
  const prefix = Number(prefixText);
  const bytes = addressBytes(addr);
  const network = bytes.map((b, i) => b & (0xff << Math.max(0, 8 - Math.max(0, prefix - i * 8))) & 0xff);
  const canonical = `${formatBytes(network)}/${prefix}`;
  // HAProxy reads 10.1.2.3/8 as 10.0.0.0/8. Refused here: whoever wrote it meant either the
  // network or the host, and guessing the wider one admits a whole /8 to a site-restricted port.
  if (network.some((b, i) => b !== bytes[i])) return r.error(n, `${what}: expected a network address for /${prefix}, found "${text}", which has host bits set; write ${canonical} for the network or ${addr} for the host alone`);
  return canonical;
}

/** The 4 or 16 bytes of an address isIP accepted. */
function addressBytes(addr: string): number[] {
  return addr.includes(':') ? ipv6Groups(addr).flatMap((g) => [g >> 8, g & 0xff]) : addr.split('.').map(Number);
}

function formatBytes(bytes: number[]): string {
  if (bytes.length === 4) return bytes.join('.');
  const groups = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return new SocketAddress({ address: groups.join(':'), family: 'ipv6' }).address;
}
