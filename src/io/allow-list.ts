import { BlockList } from 'node:net';

/**
 * A listener's `allow` list, matched once per accepted connection. Node's BlockList matches an
 * IPv4-mapped IPv6 address (::ffff:10.1.2.3, how a dual-stack [::] listener sees IPv4 clients)
 * against IPv4 entries, and a link-local address by its address alone: the zone (%eth0) is not
 * compared, so fe80::/10 admits link-local clients on every interface.
 */
export class AllowList {
  private readonly list = new BlockList();

  /** `entries`: canonical `address/prefix` texts, as the config reads them (config/source-networks.ts). */
  constructor(entries: readonly string[]) {
    for (const e of entries) {
      const [addr, prefix] = e.split('/') as [string, string];
      this.list.addSubnet(addr, Number(prefix), addr.includes(':') ? 'ipv6' : 'ipv4');
    }
  }

  /** Whether a peer's address (as getpeername wrote it) is in the list. */
  admits(addr: string): boolean {
    return this.list.check(addr, addr.includes(':') ? 'ipv6' : 'ipv4');
  }
}

/** The runtime list of a listener's config: null (every address) when it has none. */
export function allowListOf(entries: readonly string[] | null | undefined): AllowList | null {
  return entries == null ? null : new AllowList(entries);
}
