import { describe, expect, it } from 'vitest';
import { AllowList, allowListOf } from '../../src/io/allow-list.js';

describe('AllowList', () => {
  const list = new AllowList(['10.0.0.0/8', '192.168.7.0/24', '10.1.2.3/32', '2001:db8:17::/48', 'fe80::/10']);

  it('admits the addresses of its networks and no others, per family', () => {
    expect(['10.200.0.1', '192.168.7.255', '2001:db8:17:ffff::1'].map((a) => list.admits(a))).toEqual([true, true, true]);
    expect(['11.0.0.1', '192.168.8.0', '2001:db8:18::1', '::1'].map((a) => list.admits(a))).toEqual([false, false, false, false]);
  });

  it('matches an IPv4 client of a dual-stack listener (::ffff:a.b.c.d) against the IPv4 entries', () => {
    expect([list.admits('::ffff:10.9.9.9'), list.admits('::ffff:192.168.8.1')]).toEqual([true, false]);
  });

  it('matches a link-local client by its address: the zone getpeername adds is not compared', () => {
    expect([list.admits('fe80::1%lo'), list.admits('fe80::1%eth7'), new AllowList(['2001:db8::/32']).admits('fe80::1%lo')]).toEqual([true, true, false]);
  });

  it('no list is null: every address is admitted without a check', () => {
    expect([allowListOf(null), allowListOf(undefined)]).toEqual([null, null]);
  });
});
