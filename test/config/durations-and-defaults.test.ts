import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../../src/config/duration.js';
import { loadConfigText } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

describe('durations', () => {
  it('reads 500ms, 2s, 5m, 8h, 1d, fractions and bare milliseconds', () => {
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('2s')).toBe(2000);
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseDuration('8h')).toBe(28_800_000);
    expect(parseDuration('1d')).toBe(86_400_000);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('250')).toBe(250);
    expect(parseDuration(750)).toBe(750);
  });

  it('rejects anything else with null (the loader positions the error)', () => {
    for (const bad of ['5 minutes', '5min', '2 s', 's', '', '-1s', '1e3', 'ms', '1h30m', '0x10']) expect(parseDuration(bad), bad).toBeNull();
    expect(parseDuration(-5)).toBeNull();
    expect(parseDuration(Number.NaN)).toBeNull();
    expect(parseDuration(null)).toBeNull();
    expect(parseDuration(true)).toBeNull();
  });

  it('formats back in the largest whole unit', () => {
    expect([500, 2000, 300_000, 28_800_000, 1500, 0].map(formatDuration)).toEqual(['500ms', '2s', '5m', '8h', '1500ms', '0ms']);
  });

  it('check timings from YAML: 500ms / 2s / 5m strings and a bare number of ms', () => {
    const cfg = loadConfigText(`status: { listen: "127.0.0.1:0" }
backends:
  - name: b
    connect_timeout: 2s
    connect_race: 100ms
    check: { type: status, inter: 5m, fastinter: 500ms, downinter: 2s, timeout: 1500 }
    servers: [{ name: a, address: "10.0.0.1:27000" }]
  - name: c
    connect_race: 0
    servers: [{ name: a, address: "10.0.0.1:27000" }]
`);
    const b = cfg.backends[0]!;
    expect([b.check.inter, b.check.fastinter, b.check.downinter, b.check.timeout, b.connect_timeout, b.connect_race]).toEqual([300_000, 500, 2000, 1500, 2000, 100]);
    expect(cfg.backends[1]!.connect_race).toBe(0);
  });
});

describe('a number without a unit is milliseconds, and licgate says so', () => {
  const text = `admin: {}
shutdown_grace: 0
frontends:
  - { name: lmgrd, listen: "127.0.0.1:0", backend: b, idle_timeout: 1800 }
backends:
  - name: b
    connect_timeout: "3"
    connect_race: 250ms
    check: { inter: 2000, timeout: 1s }
    servers: [{ name: a, address: "10.0.0.1:27000" }]
`;

  it('warns at each duration written as a number other than 0, with the unit to write, and loads it as milliseconds', () => {
    const cfg = loadConfigText(text, 'd.yaml');
    expect([cfg.frontends[0]!.idle_timeout, cfg.backends[0]!.connect_timeout, cfg.backends[0]!.check.inter, cfg.shutdown_grace]).toEqual([1800, 3, 2000, 0]);
    expect(cfg.warnings.map(String)).toEqual([
      'd.yaml:4:69: frontend "lmgrd".idle_timeout: 1800 has no unit, so it is read as 1800ms; write 1800ms to keep that, or 1800s for seconds',
      'd.yaml:4:69: frontend "lmgrd".idle_timeout: 1800ms cuts license sessions that are silent between heartbeats (FlexLM about 2 minutes, DSLS up to about 17), and their clients check out again; set 30m or more, or leave it off',
      'd.yaml:7:22: backend "b".connect_timeout: 3 has no unit, so it is read as 3ms; write 3ms to keep that, or 3s for seconds',
      'd.yaml:9:21: backend "b".check.inter: 2000 has no unit, so it is read as 2000ms; write 2s to keep that, or 2000s for seconds',
    ]);
  });

  it('warns at a fraction of a millisecond, read as whole milliseconds: 0.4 is 0, which turns a timeout off', () => {
    const cfg = loadConfigText(`admin: {}
shutdown_delay: 0.4
shutdown_grace: 1.5
`, 'd.yaml');
    expect([cfg.shutdown_delay, cfg.shutdown_grace]).toEqual([0, 2]);
    expect(cfg.warnings.map(String)).toEqual([
      'd.yaml:3:17: shutdown_grace: 1.5 has no unit, so it is read as 2ms; write 2ms to keep that, or 1.5s for seconds',
      'd.yaml:2:17: shutdown_delay: 0.4 has no unit, so it is read as 0ms; write 0ms to keep that, or 0.4s for seconds',
    ]);
  });

  it('warns once at a number shared through an anchor, not once per backend that uses it', () => {
    const shared = `frontends:
  - { name: a, listen: "0.0.0.0:27000", backend: a }
  - { name: b, listen: "0.0.0.0:27001", backend: b }
  - { name: c, listen: "0.0.0.0:27002", backend: c }
backends:
  - &base
    name: a
    connect_timeout: 3000
    check: &check { type: tcp, inter: 2000 }
    servers: [{ name: s, address: "10.0.0.11:27000" }]
  - { <<: *base, name: b }
  - { name: c, check: *check, servers: [{ name: s, address: "10.0.0.12:27000" }] }
`;
    const cfg = loadConfigText(shared, 'd.yaml');
    expect(cfg.backends.map((b) => [b.connect_timeout, b.check.inter])).toEqual([[3000, 2000], [3000, 2000], [3000, 2000]]);
    expect(cfg.warnings.map(String)).toEqual([
      'd.yaml:8:22: backend "a".connect_timeout: 3000 has no unit, so it is read as 3000ms; write 3s to keep that, or 3000s for seconds',
      'd.yaml:9:39: backend "a".check.inter: 2000 has no unit, so it is read as 2000ms; write 2s to keep that, or 2000s for seconds',
    ]);
  });

  it('an out-of-range number says it was read as milliseconds', () => {
    expect(() => loadConfigText(text.replace('inter: 2000', 'inter: 2'), 'd.yaml')).toThrow(
      'd.yaml:9:21: backend "b".check.inter: expected a duration between 10ms and 2147483647ms, found 2 (a number without a unit is milliseconds; 2s is seconds)',
    );
  });
});

describe('a duration licgate waits for with a timer is at most 2147483647ms (~24.8 days), as in HAProxy', () => {
  // Node runs a longer timer after 1 ms: a 30d shutdown_grace cut every session at once, a 30d
  // inter checked every millisecond.
  const text = (grace: string, inter: string): string => `admin: {}
shutdown_grace: ${grace}
frontends:
  - { name: lmgrd, listen: "127.0.0.1:0", backend: b, idle_timeout: 30d }
backends:
  - name: b
    stick: source
    stick_ttl: 30d
    check: { inter: ${inter}, fastinter: ${inter}, downinter: ${inter} }
    servers: [{ name: a, address: "10.0.0.1:27000" }]
`;

  it('refuses shutdown_grace, inter, fastinter and downinter past it, each at its value', () => {
    let issues: string[] = [];
    try {
      loadConfigText(text('30d', '25d'), 'd.yaml');
    } catch (e) {
      issues = (e as ConfigError).issues.map(String);
    }
    expect(issues).toEqual([
      'd.yaml:2:17: shutdown_grace: expected a duration between 0ms and 2147483647ms, found 2592000000ms',
      'd.yaml:9:21: backend "b".check.inter: expected a duration between 10ms and 2147483647ms, found 2160000000ms',
      'd.yaml:9:37: backend "b".check.fastinter: expected a duration between 10ms and 2147483647ms, found 2160000000ms',
      'd.yaml:9:53: backend "b".check.downinter: expected a duration between 10ms and 2147483647ms, found 2160000000ms',
    ]);
  });

  it('takes 24d, and an idle_timeout or stick_ttl past it (swept, not timed)', () => {
    const cfg = loadConfigText(text('24d', '24d'), 'd.yaml');
    expect([cfg.shutdown_grace, cfg.backends[0]!.check.inter, cfg.frontends[0]!.idle_timeout, cfg.backends[0]!.stick_ttl]).toEqual([24 * 86_400_000, 24 * 86_400_000, 30 * 86_400_000, 30 * 86_400_000]);
  });
});

describe('an idle_timeout shorter than a license session\'s silence between heartbeats', () => {
  const cfgWith = (idle: string) => loadConfigText(`frontends:
  - { name: vendor, listen: "127.0.0.1:0", backend: b, idle_timeout: ${idle} }
backends:
  - name: b
    servers: [{ name: a, address: "10.0.0.1:27000" }]
`, 'i.yaml');

  it('warns below 30 minutes (FlexLM heartbeats every ~2, DSLS up to ~17): those sessions would be cut', () => {
    expect(cfgWith('90s').warnings.map(String)).toEqual([
      'i.yaml:2:70: frontend "vendor".idle_timeout: 90s cuts license sessions that are silent between heartbeats (FlexLM about 2 minutes, DSLS up to about 17), and their clients check out again; set 30m or more, or leave it off',
    ]);
    expect(cfgWith('20m').warnings).toHaveLength(1);
  });

  it('warns below 30 minutes also when the timeout is written without a unit, besides the unit warning', () => {
    expect(cfgWith('60000').warnings.map(String)).toEqual([
      'i.yaml:2:70: frontend "vendor".idle_timeout: 60000 has no unit, so it is read as 60000ms; write 1m to keep that, or 60000s for seconds',
      'i.yaml:2:70: frontend "vendor".idle_timeout: 1m cuts license sessions that are silent between heartbeats (FlexLM about 2 minutes, DSLS up to about 17), and their clients check out again; set 30m or more, or leave it off',
    ]);
  });

  it('says nothing at 30 minutes or more, or with the timeout off', () => {
    for (const idle of ['30m', '8h', '0s']) expect(cfgWith(idle).warnings).toEqual([]);
  });
});

describe('defaults and the loaded shape', () => {
  const cfg = loadConfigText(`frontends:
  - { name: lmgrd, listen: "0.0.0.0:27000", backend: licenses }
backends:
  - name: licenses
    servers:
      - { name: primary, address: "10.0.0.11:27000", weight: 100 }
      - { name: backup, address: "10.0.0.12:27000", backup: true }
      - { name: dr, address: "license-dr.example.edu:27000", tier: 2 }
      - { name: v6, address: "[2001:db8::1]:27000", weight: 0 }
`, 'd.yaml');

  it('applies the design defaults', () => {
    const b = cfg.backends[0]!;
    expect(b).toMatchObject({ balance: 'roundrobin', stick: null, failback: 'auto', retries: 2, observe_errors: 1, on_marked_down: null, connect_timeout: 3000, connect_race: 250 });
    expect(b.check).toMatchObject({ type: 'tcp', inter: 2000, fastinter: 2000, downinter: 2000, rise: 2, fall: 3, timeout: 1000, port: null });
    expect(cfg.frontends[0]).toMatchObject({ inband_status: true, idle_timeout: 0, keepalive: true, server_port: null, listen: { host: '0.0.0.0', port: 27000 } });
    expect(cfg.admin).toBeNull();
    expect(cfg.shutdown_grace).toBe(30_000);
    expect(cfg.log).toEqual({ level: 'info', format: 'json' });
    expect(cfg.file).toBe('d.yaml');
  });

  it('allow: absent means every address (null); entries are kept canonical, a bare address as its /32 or /128', () => {
    const cfg = loadConfigText(`frontends:
  - { name: lmgrd, listen: "0.0.0.0:27000", backend: b, allow: [10.0.0.0/8, 10.1.2.3, "2001:DB8:17:0::/48", "::1", "::ffff:10.0.0.0/104", 0.0.0.0/0] }
  - { name: vendor, listen: "0.0.0.0:27001", backend: b }
status: { listen: "0.0.0.0:27100", allow: [192.168.7.0/24] }
agent: { listen: "0.0.0.0:27101", backend: b }
backends: [{ name: b, servers: [{ name: a, address: "10.0.0.11:27000" }] }]
`);
    expect(cfg.frontends.map((f) => f.allow)).toEqual([['10.0.0.0/8', '10.1.2.3/32', '2001:db8:17::/48', '::1/128', '::ffff:10.0.0.0/104', '0.0.0.0/0'], null]);
    expect([cfg.status?.allow, cfg.agent?.allow]).toEqual([['192.168.7.0/24'], null]);
  });

  it('fastinter and downinter default to inter', () => {
    const c = loadConfigText(`status: { listen: "127.0.0.1:0" }\nbackends: [{ name: b, check: { type: tcp, inter: 700ms }, servers: [{ name: a, address: "10.0.0.1:1" }] }]\n`);
    expect(c.backends[0]!.check).toMatchObject({ inter: 700, fastinter: 700, downinter: 700 });
  });

  it('reads weights, tiers (backup: true is tier 1), IPv6 and host names', () => {
    expect(cfg.backends[0]!.servers.map((s) => [s.name, s.weight, s.tier, s.address.host, s.address.port])).toEqual([
      ['primary', 100, 0, '10.0.0.11', 27000],
      ['backup', 1, 1, '10.0.0.12', 27000],
      ['dr', 1, 2, 'license-dr.example.edu', 27000],
      ['v6', 0, 0, '2001:db8::1', 27000],
    ]);
  });

  it('is deeply frozen', () => {
    expect(Object.isFrozen(cfg)).toBe(true);
    expect(Object.isFrozen(cfg.backends[0]!.servers[0]!.address)).toBe(true);
    expect(Object.isFrozen(cfg.backends[0]!.check)).toBe(true);
    expect(() => {
      (cfg.backends[0]!.servers[0]! as { weight: number }).weight = 5;
    }).toThrow(TypeError);
  });

  it('send-expect reads "/regex/flags" as a regex and anything else as a literal', () => {
    const c = loadConfigText(`status: { listen: "127.0.0.1:0" }
backends:
  - name: b
    check: { type: send-expect, send: "PING\\r\\n", expect: "/^pong\\\\b/i" }
    servers: [{ name: a, address: "10.0.0.1:1" }]
  - name: c
    check: { type: send-expect, expect: "Server Status: Running" }
    servers: [{ name: a, address: "10.0.0.1:1" }]
`);
    const e = c.backends[0]!.check.expect as { regex: RegExp };
    expect(e.regex.source).toBe('^pong\\b');
    expect(e.regex.flags).toBe('i');
    expect(c.backends[0]!.check.send).toBe('PING\r\n');
    expect(c.backends[1]!.check.expect).toEqual({ literal: 'Server Status: Running' });
  });
});
