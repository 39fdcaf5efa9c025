import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfigFile, loadConfigText } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

/** Every issue of a config that must not load, as the CLI prints them: FILE:LINE:COL: message. */
function issues(text: string): string[] {
  try {
    loadConfigText(text, 'lic.yaml');
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    expect(e.code).toBe('E_CONFIG');
    expect(e.message).toBe(e.issues.map(String).join('\n'));
    return e.issues.map(String);
  }
  throw new Error('expected a ConfigError, but the config loaded');
}

// Each case is a whole file, so the expected line:col can be checked by eye.
describe('config errors: one class at a time, exact FILE:LINE:COL: message', () => {
  it('unknown key, with "did you mean" when a known key is close', () => {
    expect(
      issues(`log: { levle: debug }
status: { listen: "127.0.0.1:27100" }
backends:
  - name: licenses
    servers: [{ name: a, address: "10.0.0.11:27000" }]
`),
    ).toEqual(['lic.yaml:1:8: log: unknown key "levle" (did you mean "level"?); expected one of level, format']);
  });

  it('unknown key without a close match gets no guess', () => {
    expect(issues(`log: { colour: red }\nstatus: { listen: "127.0.0.1:27100" }\nbackends: [{ name: b, servers: [{ name: a, address: "10.0.0.1:1" }] }]\n`)).toEqual([
      'lic.yaml:1:8: log: unknown key "colour"; expected one of level, format',
    ]);
  });

  it('unknown key inside a list item and at the top level', () => {
    const got = issues(`frontend:
  - name: lmgrd
backends:
  - name: licenses
    chek: { type: status }
    servers:
      - { name: primary, adress: "10.0.0.11:27000" }
status: { listen: "127.0.0.1:27100" }
`);
    expect(got).toHaveLength(4);
    expect(got[0]).toMatch(/^lic\.yaml:1:1: config: unknown key "frontend" \(did you mean "frontends"\?\); expected one of .*\bfrontends\b/);
    expect(got[1]).toMatch(/^lic\.yaml:5:5: backends\[0\]: unknown key "chek" \(did you mean "check"\?\); expected one of .*\bcheck\b/);
    expect(got[2]).toMatch(/^lic\.yaml:7:26: backend "licenses"\.servers\[0\]: unknown key "adress" \(did you mean "address"\?\); expected one of .*\baddress\b/);
    expect(got[3]).toBe('lic.yaml:7:9: server "primary": missing required key "address"');
  });

  it('wrong types: a word for a number, "yes" for a boolean (YAML 1.2), a mapping for a list', () => {
    expect(
      issues(`frontends:
  - name: lmgrd
    listen: "127.0.0.1:27000"
    backend: licenses
    inband_status: yes
backends:
  - name: licenses
    retries: two
    servers: { name: a }
`),
    ).toEqual([
      'lic.yaml:5:20: frontend "lmgrd".inband_status: expected true or false, found "yes"',
      'lic.yaml:9:14: backend "licenses".servers: expected a list, found a mapping',
      'lic.yaml:8:14: backend "licenses".retries: expected a whole number 0-16, found "two"',
    ]);
  });

  it('weight out of range (257)', () => {
    expect(
      issues(`status: { listen: "127.0.0.1:27100" }
backends:
  - name: licenses
    servers:
      - { name: primary, address: "10.0.0.11:27000", weight: 257 }
`),
    ).toEqual(['lic.yaml:5:62: server "primary".weight: expected a whole number 0-256, found 257']);
  });

  it('negative weight and a fractional one', () => {
    expect(
      issues(`status: { listen: "127.0.0.1:27100" }
backends:
  - name: licenses
    servers:
      - { name: a, address: "10.0.0.11:27000", weight: -1 }
      - { name: b, address: "10.0.0.12:27000", weight: 1.5 }
`),
    ).toEqual([
      'lic.yaml:5:56: server "a".weight: expected a whole number 0-256, found -1',
      'lic.yaml:6:56: server "b".weight: expected a whole number 0-256, found number 1.5',
    ]);
  });

  it('bad duration "5 minutes"', () => {
    expect(
      issues(`status: { listen: "127.0.0.1:27100" }
backends:
  - name: licenses
    check: { type: status, inter: 5 minutes }
    servers: [{ name: a, address: "10.0.0.11:27000" }]
`),
    ).toEqual(['lic.yaml:4:35: backend "licenses".check.inter: expected a duration like 500ms, 2s, 5m or 8h, found "5 minutes"']);
  });

  it('connect_race: a duration, not "off" (0 turns it off)', () => {
    expect(
      issues(`status: { listen: "127.0.0.1:27100" }
backends:
  - name: licenses
    connect_race: off
    servers: [{ name: a, address: "10.0.0.11:27000" }]
`),
    ).toEqual(['lic.yaml:4:19: backend "licenses".connect_race: expected a duration like 500ms, 2s, 5m or 8h, found "off"']);
  });

  // An IPv6 address without its port is named so, not split at its last colon; a zone is kept.
  it('bad listen and server addresses: no port, port out of range, not an IP address or host name, IPv6 without brackets or port', () => {
    expect(
      issues(`frontends:
  - { name: a, listen: "27000", backend: licenses }
  - { name: b, listen: "127.0.0.1:99999", backend: licenses }
  - { name: c, listen: "10.0.0.300:27000", backend: licenses }
  - { name: d, listen: "lic server:27000", backend: licenses }
  - { name: e, listen: "::1:27000", backend: licenses }
  - { name: f, listen: "[::1]", backend: licenses }
  - { name: g, listen: "[::1]:", backend: licenses }
  - { name: h, listen: "[fe80::1%lo]:27000", backend: licenses }
  - { name: i, listen: "[fe80::1%25lo]:27000", backend: licenses }
backends:
  - name: licenses
    servers:
      - { name: s, address: "10.0.0.11:27000" }
      - { name: s1, address: "2001:db8::11" }
      - { name: s2, address: "fd00::11:2700" }
      - { name: s3, address: "[fe80::11%eth0]:27000" }
`),
    ).toEqual([
      'lic.yaml:2:24: frontend "a".listen: expected host:port (e.g. 10.0.0.11:27000 or [::1]:27000), found "27000"',
      'lic.yaml:3:24: frontend "b".listen: expected a port 0-65535, found 99999',
      'lic.yaml:4:24: frontend "c".listen: expected an IP address or host name, found "10.0.0.300"',
      'lic.yaml:5:24: frontend "d".listen: expected an IP address or host name, found "lic server"',
      'lic.yaml:6:24: frontend "e".listen: expected an IPv6 address in brackets, e.g. [::1]:27000',
      'lic.yaml:7:24: frontend "f".listen: expected [IPv6 address]:port, e.g. [::1]:27000, found "[::1]"',
      'lic.yaml:8:24: frontend "g".listen: expected [IPv6 address]:port, e.g. [::1]:27000, found "[::1]:"',
      'lic.yaml:10:24: frontend "i".listen: expected an interface name after %, found "%25lo" (%25 is how a URL writes %): write [fe80::1%lo]:27000',
      'lic.yaml:15:30: server "s1".address: expected [IPv6 address]:port, found the address "2001:db8::11" without a port; e.g. [2001:db8::11]:27000',
      'lic.yaml:16:30: server "s2".address: expected an IPv6 address in brackets: "fd00::11:2700" is either [fd00::11]:2700 or the address fd00::11:2700 without a port',
    ]);
  });

  it('a server address needs a port from 1 (0 is only for listeners)', () => {
    expect(issues(`status: { listen: "127.0.0.1:27100" }\nbackends:\n  - name: b\n    servers: [{ name: a, address: "10.0.0.11:0" }]\n`)).toEqual([
      'lic.yaml:4:35: server "a".address: expected a port 1-65535, found 0',
    ]);
  });

  it('missing required keys, positioned at the mapping that lacks them', () => {
    expect(
      issues(`frontends:
  - name: lmgrd
    backend: licenses
backends:
  - name: licenses
    servers:
      - { name: c, weight: 1 }
`),
    ).toEqual(['lic.yaml:2:5: frontend "lmgrd": missing required key "listen"', 'lic.yaml:7:9: server "c": missing required key "address"']);
  });

  it('duplicate names: backends, frontends, servers within a backend', () => {
    expect(
      issues(`frontends:
  - { name: lmgrd, listen: "127.0.0.1:27000", backend: licenses }
  - { name: lmgrd, listen: "127.0.0.1:27001", backend: licenses }
backends:
  - name: licenses
    servers: [{ name: a, address: "10.0.0.11:27000" }]
  - name: licenses
    servers:
      - { name: a, address: "10.0.0.11:27000" }
      - { name: a, address: "10.0.0.12:27000" }
`),
    ).toEqual([
      'lic.yaml:7:11: duplicate backend name "licenses"',
      'lic.yaml:3:13: duplicate frontend name "lmgrd"',
      'lic.yaml:10:17: backend "licenses": duplicate server name "a"',
    ]);
  });

  it('a key written without a value ({ listen }, ? listen) is reported at that key, not at 1:1', () => {
    expect(issues(`status: { listen }
backends:
  - name: b
    servers:
      - { name: a, address }
`)).toEqual(['lic.yaml:1:11: status.listen: expected host:port, found nothing', 'lic.yaml:5:20: server "a".address: expected host:port, found nothing']);
  });

  it('a duplicate key in one mapping', () => {
    expect(issues(`status: { listen: "127.0.0.1:27100" }\nbackends:\n  - name: b\n    retries: 1\n    retries: 2\n    servers: [{ name: a, address: "10.0.0.1:1" }]\n`)).toEqual([
      'lic.yaml:5:5: backends[0]: duplicate key "retries"',
    ]);
  });

  it('unknown backend reference, with a guess', () => {
    expect(
      issues(`frontends:
  - { name: lmgrd, listen: "127.0.0.1:27000", backend: licence }
status: { listen: "127.0.0.1:27100", backend: flexlm }
backends:
  - name: licenses
    servers: [{ name: a, address: "10.0.0.11:27000" }]
`),
    ).toEqual([
      'lic.yaml:2:56: frontend "lmgrd": unknown backend "licence" (did you mean "licenses"?); backends: licenses',
      'lic.yaml:3:47: status.backend: unknown backend "flexlm"; backends: licenses',
    ]);
  });

  it('YAML syntax errors are positioned where the parser found them', () => {
    expect(issues(`status: { listen: "127.0.0.1:27100" }\nbackends:\n  - name: b\n\t servers: []\n`)).toEqual(['lic.yaml:4:1: YAML syntax: Tabs are not allowed as indentation']);
    expect(issues(`status:\n  listen: "127.0.0.1:27100\nbackends: []\n`)).toEqual([expect.stringMatching(/^lic\.yaml:(2|3|4):\d+: YAML syntax: Missing closing "quote/)]);
  });

  it('a YAML alias with no anchor before it is an error at the alias, not a silent default or "found nothing" at 1:1', () => {
    // The anchor is spelled status-check; the aliases say status_check (and one comes before its anchor).
    expect(
      issues(`status: { listen: "127.0.0.1:27100" }
backends:
  - name: flexlm
    retries: *retries
    check: &status-check { type: status, inter: 2s }
    servers: [{ name: a, address: "10.0.0.11:27000" }]
  - name: dsls
    retries: &retries 3
    check: *status_check
    servers: [{ name: b, address: "10.0.0.12:4085" }]
`),
    ).toEqual([
      'lic.yaml:4:14: YAML alias *retries: expected an anchor &retries before it in the file, found none',
      'lic.yaml:9:12: YAML alias *status_check: expected an anchor &status_check before it in the file, found none',
    ]);
    const shared = loadConfigText(`status: { listen: "127.0.0.1:27100" }
backends:
  - { name: flexlm, check: &status-check { type: status, inter: 5s }, servers: [{ name: a, address: "10.0.0.11:27000" }] }
  - { name: dsls, check: *status-check, servers: [{ name: b, address: "10.0.0.12:4085" }] }
`);
    expect(shared.backends.map((b) => [b.check.type, b.check.inter])).toEqual([['status', 5000], ['status', 5000]]);
  });

  it('a file of many aliases loads in time linear in its size, each alias the last anchor of its name before it', () => {
    // An anchor written again is a new one from there on, as YAML says.
    const cfg = loadConfigText(`status: { listen: "127.0.0.1:0" }
backends:
  - { name: a, retries: &n 3, observe_errors: *n, max_queue: &n 7, stick_size: *n, stick: source, servers: [{ name: s, address: "10.0.0.1:1" }] }
`);
    expect([cfg.backends[0]!.observe_errors, cfg.backends[0]!.stick_size]).toEqual([3, 7]);
    const argv = (n: number): string => `status: { listen: "127.0.0.1:0" }
backends:
  - name: a
    check: { type: exec, argv: [&arg lmstat${', *arg'.repeat(n)}] }
    servers: [{ name: s, address: "10.0.0.1:1" }]
`;
    const started = performance.now();
    expect(loadConfigText(argv(10_000)).backends[0]!.check.argv).toHaveLength(10_001);
    // It took over 30 s, one walk of the document per alias.
    expect(performance.now() - started).toBeLessThan(5000);
  });


  it('YAML merge keys (<<: *anchor) share a check or a server between backends; the mapping\'s own keys win', () => {
    const cfg = loadConfigText(`status: { listen: "127.0.0.1:27100" }
backends:
  - name: flexlm
    check: &status-check { type: status, port: 27100, inter: 2s, rise: 2 }
    servers:
      - &lic { name: lic1, address: "10.0.0.11:27000", weight: 100 }
      - { <<: *lic, name: lic2, address: "10.0.0.12:27000" }
  - name: flexlm-dr
    check:
      <<: *status-check
      inter: 10s
    servers:
      - <<: [{ name: dr1, weight: 50 }, *lic]
        address: "10.9.0.11:27000"
`);
    expect(cfg.backends.map((b) => [b.name, b.check.type, b.check.port, b.check.inter, b.check.rise])).toEqual([
      ['flexlm', 'status', 27100, 2000, 2],
      ['flexlm-dr', 'status', 27100, 10_000, 2],
    ]);
    expect(cfg.backends.flatMap((b) => b.servers.map((s) => [s.name, `${s.address.host}:${s.address.port}`, s.weight]))).toEqual([
      ['lic1', '10.0.0.11:27000', 100],
      ['lic2', '10.0.0.12:27000', 100],
      ['dr1', '10.9.0.11:27000', 50],
    ]);
    // What is wrong in merged keys is reported where it is written; a merge of something that is not a mapping at the "<<".
    expect(
      issues(`status: { listen: "127.0.0.1:27100" }
backends:
  - name: flexlm
    check: &status-check { type: status, intre: 2s }
    servers: [{ name: a, address: "10.0.0.11:27000" }]
  - name: dsls
    check: { <<: *status-check, timeout: 1s }
    servers: [{ name: b, address: "10.0.0.12:4085", <<: 5 }]
`),
    ).toEqual([
      'lic.yaml:4:42: backend "flexlm".check: unknown key "intre" (did you mean "inter"?); expected one of type, inter, fastinter, downinter, rise, fall, timeout, port, send, expect, read_limit, path, expect_status, argv, env, exit_code, parse',
      'lic.yaml:4:42: backend "dsls".check: unknown key "intre" (did you mean "inter"?); expected one of type, inter, fastinter, downinter, rise, fall, timeout, port, send, expect, read_limit, path, expect_status, argv, env, exit_code, parse',
      'lic.yaml:8:57: backend "dsls".servers[0]: YAML merge key "<<": expected a mapping, an alias of one (<<: *name) or a list of them, found number 5',
    ]);
  });
  it('stick_ttl or stick_size without "stick: source", agent_inter without agent_port: options that would do nothing', () => {
    // The admin meant FlexLM stickiness (stick_ttl: 8h) but left out "stick: source": the backend kept no
    // table, and a client's vendor connection could go to another server than its lmgrd connection.
    expect(
      issues(`frontends:
  - { name: lmgrd, listen: "0.0.0.0:27000", backend: flexlm }
  - { name: vendor, listen: "0.0.0.0:27001", backend: flexlm, server_port: 27001 }
backends:
  - name: flexlm
    stick_ttl: 8h
    stick_size: 50000
    agent_inter: 5s
    servers: [{ name: a, address: "10.0.0.11:27000" }, { name: b, address: "10.0.0.12:27000" }]
  - name: hashed
    balance: source
    stick_ttl: 1h
    servers: [{ name: c, address: "10.0.0.13:27000" }]
`),
    ).toEqual([
      'lic.yaml:6:16: backend "flexlm".stick_ttl: sets the stick table of "stick: source", which this backend does not have; add "stick: source" (a FlexLM client\'s lmgrd and vendor connections must meet one server) or remove stick_ttl',
      'lic.yaml:7:17: backend "flexlm".stick_size: sets the stick table of "stick: source", which this backend does not have; add "stick: source" (a FlexLM client\'s lmgrd and vendor connections must meet one server) or remove stick_size',
      'lic.yaml:8:18: backend "flexlm".agent_inter: how often the agent on agent_port is read, but agent_port is not set (a check of type agent runs every inter)',
      'lic.yaml:12:16: backend "hashed".stick_ttl: sets the stick table of "stick: source", which this backend does not have ("balance: source" keeps no table); remove stick_ttl',
    ]);
  });

  it('a name or listen address a merge key brings in, and that clashes where it is merged, is reported at that "<<", once per mapping', () => {
    // The anchor itself is fine: each mapping that merges it without its own name is not. Reported
    // at the anchor, both errors named the same line and column, the first server, which is right.
    expect(
      issues(`status: { listen: "127.0.0.1:27100" }
frontends:
  - &fe { name: lmgrd, listen: "0.0.0.0:27000", backend: flexlm }
  - { <<: *fe, name: vendor }
backends:
  - name: flexlm
    servers:
      - &lic { name: lic1, address: "10.0.0.11:27000", weight: 100 }
      - { <<: *lic, address: "10.0.0.12:27000" }
      - <<: *lic
        address: "10.0.0.13:27000"
`),
    ).toEqual([
      'lic.yaml:9:11: backend "flexlm": duplicate server name "lic1"',
      'lic.yaml:10:9: backend "flexlm": duplicate server name "lic1"',
      'lic.yaml:4:7: frontend "vendor": listen address 0.0.0.0:27000 is already used by frontend "lmgrd"',
    ]);
  });

  it('vrrp.state_file: an absolute path to a file, and required', () => {
    const rest = `status: { listen: "127.0.0.1:27100" }\nbackends: [{ name: b, servers: [{ name: a, address: "10.0.0.1:1" }] }]\n`;
    const want = 'an absolute file path (where licgate-vrrp-notify.sh writes, e.g. /run/licgate/vrrp-state)';
    expect(issues(`vrrp: { state_file: run/licgate/vrrp-state }\n${rest}`)).toEqual([`lic.yaml:1:21: vrrp.state_file: expected ${want}, found "run/licgate/vrrp-state"`]);
    expect(issues(`vrrp: { state_file: /run/licgate/ }\n${rest}`)).toEqual([`lic.yaml:1:21: vrrp.state_file: expected ${want}, found "/run/licgate/"`]);
    expect(issues(`vrrp: { statefile: /run/licgate/vrrp-state }\n${rest}`)).toEqual([
      'lic.yaml:1:9: vrrp: unknown key "statefile" (did you mean "state_file"?); expected one of state_file',
      'lic.yaml:1:7: vrrp: missing required key "state_file"',
    ]);
    expect(loadConfigText(`vrrp: { state_file: /run/licgate/vrrp-state }\n${rest}`, 'lic.yaml').vrrp).toEqual({ state_file: '/run/licgate/vrrp-state' });
  });

  it('peers: addresses, remotes 1-8 IP addresses other than listen, a token file', () => {
    const rest = `status: { listen: "127.0.0.1:27100" }\nbackends: [{ name: b, stick: source, servers: [{ name: a, address: "10.0.0.1:1" }] }]\n`;
    expect(issues(`peers:\n  listen: 10.0.0.1\n  remotes: []\n${rest}`)).toEqual([
      'lic.yaml:2:11: peers.listen: expected host:port (e.g. 10.0.0.11:27000 or [::1]:27000), found "10.0.0.1"',
      'lic.yaml:3:12: peers.remotes: expected 1-8 addresses (the other host of the keepalived pair), found 0',
      'lic.yaml:2:3: peers: missing required key "token_file"',
    ]);
    expect(issues(`peers:\n  listen: 10.0.0.1:8406\n  remotes: [10.0.0.1:8406, lb2.example.edu:8406]\n  token_file: /nonexistent/peers.token\n${rest}`)).toEqual([
      "lic.yaml:3:13: peers.remotes[0]: 10.0.0.1:8406 is this host's own peers.listen; list the other host(s)",
      'lic.yaml:3:28: peers.remotes[1]: expected an IP address (the peers listener admits remotes by address), found "lb2.example.edu"',
      'lic.yaml:4:15: peers.token_file: cannot read /nonexistent/peers.token: ENOENT',
    ]);
  });

  it('peers: a remote of the other address family than listen, which the pusher cannot connect to', () => {
    const rest = `  token_file: /nonexistent/peers.token\nstatus: { listen: "127.0.0.1:27100" }\nbackends: [{ name: b, stick: source, servers: [{ name: a, address: "10.0.0.1:1" }] }]\n`;
    expect(issues(`peers:\n  listen: 10.0.0.1:8406\n  remotes: ["[fd00::2]:8406"]\n${rest}`)[0]).toBe(
      'lic.yaml:3:13: peers.remotes[0]: expected an IPv4 address as peers.listen 10.0.0.1 is (this host connects from its listen address), found [fd00::2]:8406',
    );
    expect(issues(`peers:\n  listen: "[fd00::1]:8406"\n  remotes: [10.0.0.2:8406]\n${rest}`)[0]).toBe(
      'lic.yaml:3:13: peers.remotes[0]: expected an IPv6 address as peers.listen fd00::1 is (this host connects from its listen address), found 10.0.0.2:8406',
    );
    // A wildcard listen names no source address: the kernel picks one of the remote's family.
    expect(issues(`peers:\n  listen: 0.0.0.0:8406\n  remotes: ["[fd00::2]:8406"]\n${rest}`)).toEqual(['lic.yaml:4:15: peers.token_file: cannot read /nonexistent/peers.token: ENOENT']);
  });

  it('peers: a remote listed twice', () => {
    const rest = `  token_file: /nonexistent/peers.token\nstatus: { listen: "127.0.0.1:27100" }\nbackends: [{ name: b, stick: source, servers: [{ name: a, address: "10.0.0.1:1" }] }]\n`;
    expect(issues(`peers:\n  listen: 10.0.0.1:8406\n  remotes: [10.0.0.2:8406, 10.0.0.2:8406]\n${rest}`)[0]).toBe(
      'lic.yaml:3:28: peers.remotes[1]: expected each remote once, found 10.0.0.2:8406 again (remotes[0])',
    );
  });

  it('peers: a wildcard listen warns that the other host admits only the address the kernel picks to connect from', () => {
    const dir = mkdtempSync(join(tmpdir(), 'licgate-peers-warn-'));
    try {
      const token = join(dir, 'peers.token');
      writeFileSync(token, 'peers-warn-token-0123456789abcdef\n', { mode: 0o600 });
      const text = (listen: string) => `peers:\n  listen: ${listen}\n  remotes: [10.0.0.2:8406]\n  token_file: ${token}\nstatus: { listen: "127.0.0.1:27100" }\nbackends: [{ name: b, stick: source, servers: [{ name: a, address: "10.0.0.1:1" }] }]\n`;
      expect(loadConfigText(text('0.0.0.0:8406'), 'lic.yaml').warnings.map(String)).toEqual([
        "lic.yaml:2:11: peers.listen: 0.0.0.0 names no address to connect from: the kernel picks this host's source address towards each remote (on the VIP holder it can be the VIP), and the other host resets it unless its remotes list that address; set this host's own address",
      ]);
      expect(loadConfigText(text('10.0.0.1:8406'), 'lic.yaml').warnings).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('admin on 0.0.0.0 without a token file', () => {
    expect(
      issues(`admin:
  listen: 0.0.0.0:8404
`),
    ).toEqual(['lic.yaml:2:11: admin.listen: 0.0.0.0:8404 is reachable from other hosts; set admin.token_file, or listen on 127.0.0.1']);
  });

  it('an unreadable token file and the nothing-to-run case', () => {
    expect(issues(`admin:\n  listen: 127.0.0.1:8404\n  token_file: /nonexistent/licgate.token\n`)).toEqual([
      'lic.yaml:3:15: admin.token_file: cannot read /nonexistent/licgate.token: ENOENT',
    ]);
    expect(issues(`log: { level: info }\n`)).toEqual(['lic.yaml:1:1: nothing to run: declare frontends (proxy role), status/agent (sidecar role) or admin']);
  });

  it('a token that could never be presented: too short, with a space inside, outside printable ASCII', () => {
    const dir = mkdtempSync(join(tmpdir(), 'licgate-token-'));
    try {
      const cases: [string, string][] = [
        ['s3cret\n', 'expected a token of at least 16 characters in FILE, found 6'],
        ['correct horse battery staple\n', 'expected a token of printable ASCII without spaces in FILE (it is sent as "Authorization: Bearer <token>"), found a space at character 8'],
        ['pässwort-0123456789\r\n', 'expected a token of printable ASCII without spaces in FILE (it is sent as "Authorization: Bearer <token>"), found "ä" at character 2'],
      ];
      cases.forEach(([text, problem], i) => {
        const file = join(dir, `token${i}`);
        writeFileSync(file, text);
        expect(issues(`admin:\n  listen: 127.0.0.1:8404\n  token_file: ${file}\n`)).toEqual([`lic.yaml:3:15: admin.token_file: ${problem.replace('FILE', file)}`]);
      });
      // Line ends around a good token are not part of it.
      writeFileSync(join(dir, 'good'), 'Zm9vYmFyLWJhei0xMjM0NTY3ODk=\r\n');
      expect(loadConfigText(`admin:\n  listen: 127.0.0.1:8404\n  token_file: ${join(dir, 'good')}\n`, 'lic.yaml').admin?.token_file).toBe(join(dir, 'good'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('warns of a token file every user can write, as of one every user can read', () => {
    const dir = mkdtempSync(join(tmpdir(), 'licgate-token-'));
    try {
      const file = join(dir, 'admin.token');
      writeFileSync(file, 'Zm9vYmFyLWJhei0xMjM0NTY3ODk=\n');
      const warned = (mode: number): string[] => {
        chmodSync(file, mode);
        return loadConfigText(`admin:\n  listen: 127.0.0.1:8404\n  token_file: ${file}\n`, 'lic.yaml').warnings.map(String);
      };
      expect([0o640, 0o602, 0o666].map(warned)).toEqual([
        [],
        [`lic.yaml:3:15: admin.token_file ${file} is writable by every user on this host (mode 0602): any of them can put in a token of their own, taken at the next reload; chmod o-w ${file}`],
        [`lic.yaml:3:15: admin.token_file ${file} is readable and writable by every user on this host (mode 0666): any of them can drain servers or reload; chmod o-rw ${file}`],
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a listen name that only starts like a loopback address is reachable from other hosts', () => {
    expect(issues(`admin:\n  listen: 127.0.0.1.nip.io:8404\n`)).toEqual([
      'lic.yaml:2:11: admin.listen: 127.0.0.1.nip.io:8404 is reachable from other hosts; set admin.token_file, or listen on 127.0.0.1',
    ]);
    expect(loadConfigText(`admin:\n  listen: "[::ffff:127.0.0.1]:8404"\n`, 'lic.yaml').admin?.listen.host).toBe('::ffff:127.0.0.1');
  });

  it('two listeners on one address', () => {
    expect(
      issues(`status: { listen: "127.0.0.1:27000" }
frontends:
  - { name: lmgrd, listen: "127.0.0.1:27000", backend: licenses }
backends:
  - name: licenses
    servers: [{ name: a, address: "10.0.0.11:27000" }]
`),
    ).toEqual(['lic.yaml:1:19: status: listen address 127.0.0.1:27000 is already used by frontend "lmgrd"']);
  });

  it('listeners the kernel cannot bind together: a wildcard and another address on its port', () => {
    // Linux refuses a second listener on a port a wildcard holds, and Node binds [::] dual-stack
    // (IPv4 too); different ports, or 0.0.0.0 beside an IPv6 address, bind fine. An IPv4-mapped
    // address binds its IPv4 one; one link-local address on two links (zones) binds twice.
    expect(
      issues(`status: { listen: "127.0.0.1:27100" }
agent: { listen: "0.0.0.0:27100", backend: licenses }
frontends:
  - { name: v4, listen: "0.0.0.0:27000", backend: licenses }
  - { name: v6, listen: "[::]:27000", backend: licenses }
  - { name: vip, listen: "10.0.0.100:27001", backend: licenses }
  - { name: any, listen: "[::0]:27001", backend: licenses }
  - { name: v6lo, listen: "[::1]:27002", backend: licenses }
  - { name: v4any, listen: "0.0.0.0:27002", backend: licenses }
  - { name: eth0, listen: "[fe80::1%eth0]:27003", backend: licenses }
  - { name: eth1, listen: "[fe80::1%eth1]:27003", backend: licenses }
  - { name: mapped, listen: "[::ffff:10.0.0.1]:27002", backend: licenses }
  - { name: mapped-vip, listen: "[::ffff:10.0.0.100]:27001", backend: licenses }
backends:
  - name: licenses
    servers: [{ name: a, address: "10.0.0.11:27000" }]
`),
    ).toEqual([
      'lic.yaml:5:25: frontend "v6": listen address [::]:27000 overlaps 0.0.0.0:27000 of frontend "v4" ([::] takes IPv4 too); one of them is enough',
      'lic.yaml:7:26: frontend "any": listen address [::]:27001 overlaps 10.0.0.100:27001 of frontend "vip" ([::] takes IPv4 too); one of them is enough',
      'lic.yaml:12:29: frontend "mapped": listen address [::ffff:10.0.0.1]:27002 overlaps 0.0.0.0:27002 of frontend "v4any" (0.0.0.0 takes every IPv4 address); one of them is enough',
      'lic.yaml:13:33: frontend "mapped-vip": listen address [::ffff:10.0.0.100]:27001 overlaps 10.0.0.100:27001 of frontend "vip" ([::ffff:10.0.0.100] binds 10.0.0.100); one of them is enough',
      'lic.yaml:2:18: agent: listen address 0.0.0.0:27100 overlaps 127.0.0.1:27100 of status (0.0.0.0 takes every IPv4 address); one of them is enough',
    ]);
  });

  it('several errors in one file are all reported, read errors and cross-checks together, in file order per pass', () => {
    expect(
      issues(`admin:
  listen: 0.0.0.0:8404
frontends:
  - name: lmgrd
    listen: "10.0.0.1"
    backend: licence
backends:
  - name: licenses
    retries: two
    check: { type: status, inter: 5 minutes, rise: 0 }
    servers:
      - { name: primary, address: "10.0.0.11:27000", weight: 257 }
      - { name: primary, address: "10.0.0.12:27000", backup: true, tier: 2 }
      - { name: dr, adress: "10.9.0.11:27000" }
`),
    ).toEqual([
      'lic.yaml:5:13: frontend "lmgrd".listen: expected host:port (e.g. 10.0.0.11:27000 or [::1]:27000), found "10.0.0.1"',
      'lic.yaml:9:14: backend "licenses".retries: expected a whole number 0-16, found "two"',
      'lic.yaml:10:35: backend "licenses".check.inter: expected a duration like 500ms, 2s, 5m or 8h, found "5 minutes"',
      'lic.yaml:10:52: backend "licenses".check.rise: expected a whole number 1-100, found 0',
      'lic.yaml:12:62: server "primary".weight: expected a whole number 0-256, found 257',
      'lic.yaml:13:74: server "primary": "backup: true" means tier 1, but tier is 2; use one or the other',
      'lic.yaml:14:21: backend "licenses".servers[2]: unknown key "adress" (did you mean "address"?); expected one of name, address, weight, backup, tier, maxconn, init_state',
      'lic.yaml:14:9: server "dr": missing required key "address"',
      'lic.yaml:13:17: backend "licenses": duplicate server name "primary"',
      'lic.yaml:6:14: frontend "lmgrd": unknown backend "licence" (did you mean "licenses"?); backends: licenses',
      'lic.yaml:2:11: admin.listen: 0.0.0.0:8404 is reachable from other hosts; set admin.token_file, or listen on 127.0.0.1',
    ]);
  });

  it('a webhook URL that is not one is quoted without its path, which is often the secret', () => {
    expect(
      issues(`status: { listen: "127.0.0.1:27100" }
backends: [{ name: b, servers: [{ name: a, address: "10.0.0.1:1" }] }]
notify:
  webhooks:
    - url: hooks.slack.com/services/T0001/B0002/pathSecretXyz
`),
    ).toEqual(['lic.yaml:5:12: notify.webhooks[0].url: expected an http:// or https:// URL, found "hooks.slack.com/…"']);
  });

  it('a webhook secret written wrong is not quoted: a header value YAML reads as a number, credentials or a query in a URL without its scheme', () => {
    const found = issues(`status: { listen: "127.0.0.1:27100" }
backends: [{ name: b, servers: [{ name: a, address: "10.0.0.1:1" }] }]
notify:
  webhooks:
    - url: alerts:s3cretPass@alerts.example.edu/hook
    - url: alerts.example.edu?token=s3cretToken
    - url: https://alerts.example.edu/hook
      headers:
        X-Api-Key: 86753090123456
        X-Flag: true
`);
    expect(found).toEqual([
      'lic.yaml:5:12: notify.webhooks[0].url: expected an http:// or https:// URL, found "…@alerts.example.edu/…"',
      'lic.yaml:6:12: notify.webhooks[1].url: expected an http:// or https:// URL, found "alerts.example.edu?…"',
      'lic.yaml:9:20: notify.webhooks[2].headers.X-Api-Key: expected a string, found a number (not shown: a header value is often a secret); put the value in quotes',
      'lic.yaml:10:17: notify.webhooks[2].headers.X-Flag: expected a string, found a boolean (not shown: a header value is often a secret); put the value in quotes',
    ]);
  });

  it('webhook headers: a name that is not a token, the same name twice in any case, a value over two lines', () => {
    expect(
      issues(`status: { listen: "127.0.0.1:27100" }
backends: [{ name: b, servers: [{ name: a, address: "10.0.0.1:1" }] }]
notify:
  webhooks:
    - url: https://hooks.example.net/x
      headers:
        X Token: a
        Authorization: Bearer a
        authorization: Bearer b
        X-Note: "first\\nsecond"
`),
    ).toEqual([
      `lic.yaml:7:9: notify.webhooks[0].headers: expected a header name (letters, digits and !#$%&'*+-.^_\`|~), found "X Token"`,
      'lic.yaml:9:9: notify.webhooks[0].headers: duplicate header "authorization" (header names are not case-sensitive)',
      'lic.yaml:10:17: notify.webhooks[0].headers.X-Note: expected a header value on one line without control characters, found one at character 6',
    ]);
  });

  it('columns count characters, as an editor does: an emoji earlier on the line does not shift them', () => {
    expect(issues(`status: { listen: "127.0.0.1:27100" }\nbackends: [{ name: b, servers: [{ name: a, address: "10.0.0.1:1" }] }] # 🔑 key\nlog: { level: "🔑", format: loud }\n`)).toEqual([
      'lic.yaml:3:15: log.level: expected one of trace | debug | info | warn | error | fatal | silent, found "🔑"',
      'lic.yaml:3:28: log.format: expected one of json | pretty, found "loud"',
    ]);
  });

  it('a second YAML document is refused at its "---", saying what was expected and found', () => {
    expect(issues(`admin: { listen: "127.0.0.1:8404" }
---
status: { listen: "127.0.0.1:27100" }
`)).toEqual(['lic.yaml:2:1: YAML: expected one document, found a second one starting here ("---" separates documents); remove this "---", or put what follows in another file']);
  });

  it('a file that ends with "---" and nothing after it is one config, as templates joined by "---" write it', () => {
    const cfg = loadConfigText(`---
admin: { listen: "127.0.0.1:8404" }
---
# nothing more
`, 'lic.yaml');
    expect(cfg.admin!.listen).toEqual({ host: '127.0.0.1', port: 8404 });
  });

  it('an optional section with nothing under it is its defaults, as {} is; one with required keys names them', () => {
    const cfg = loadConfigText(`admin:
  # listen: 0.0.0.0:8404
log:
notify:
  webhooks:
frontends:
backends:
`, 'lic.yaml');
    expect([cfg.admin, cfg.log, cfg.notify, cfg.frontends, cfg.backends]).toEqual([{ listen: { host: '127.0.0.1', port: 8404 }, token_file: null, state_file: null }, { level: 'info', format: 'json' }, { webhooks: [] }, [], []]);
    expect(issues(`admin: {}
status:
agent: ~
vrrp:
`)).toEqual([
      'lic.yaml:2:8: status: missing required key "listen"',
      'lic.yaml:3:8: agent: missing required key "listen"',
      'lic.yaml:3:8: agent: missing required key "backend"',
      'lic.yaml:4:6: vrrp: missing required key "state_file"',
      'lic.yaml:2:8: status: there is no backend to report on; add a backend',
    ]);
  });

  it('a backend\'s check with nothing under it is the default check, as check: {} is', () => {
    const text = (check: string): string => `status: { listen: "127.0.0.1:0" }
backends:
  - name: licenses
    check:${check}
    servers: [{ name: a, address: "10.0.0.11:27000" }]
`;
    expect(loadConfigText(text('\n      # type: lmstat'), 'lic.yaml').backends[0]!.check).toEqual(loadConfigText(text(' {}'), 'lic.yaml').backends[0]!.check);
  });

  it('a backend no frontend, status or agent uses loads with a warning naming it; an admin-only config that monitors backends gets none', () => {
    const backends = `backends:
  - name: licenses
    servers: [{ name: a, address: "10.0.0.11:27000" }]
  - name: old-licenses
    servers: [{ name: a, address: "10.0.0.12:27000" }]
`;
    const cfg = loadConfigText(`frontends:
  - { name: lmgrd, listen: "127.0.0.1:27000", backend: licenses }
${backends}`, 'lic.yaml');
    expect(cfg.backends.map((b) => b.name)).toEqual(['licenses', 'old-licenses']);
    expect(cfg.warnings.map(String)).toEqual([
      `lic.yaml:6:11: backend "old-licenses": no frontend, status or agent uses it, yet its servers are checked and its "no usable server" is logged and notified; name it in a frontend's "backend" or remove it`,
    ]);
    // status without a backend reports on the first one.
    expect(loadConfigText(`status: { listen: "127.0.0.1:0" }\n${backends}`, 'lic.yaml').warnings.map(String)).toEqual([expect.stringContaining('lic.yaml:5:11: backend "old-licenses": no frontend')]);
    expect(loadConfigText(`admin: {}\n${backends}`, 'lic.yaml').warnings).toEqual([]);
  });

  it('a server_port frontend on a backend of several servers with neither stick nor a source hash loads with a warning: its checkouts split across two servers', () => {
    const text = (balance: string, servers = 2): string => `frontends:
  - { name: lmgrd, listen: "127.0.0.1:27000", backend: licenses }
  - { name: vendor, listen: "127.0.0.1:27001", backend: licenses, server_port: 27001 }
backends:
  - name: licenses
${balance}    servers:
${['      - { name: a, address: "10.0.0.11:27000" }', '      - { name: b, address: "10.0.0.12:27000" }'].slice(0, servers).join('\n')}
`;
    expect(loadConfigText(text(''), 'lic.yaml').warnings.map(String)).toEqual([
      `lic.yaml:3:80: frontend "vendor": server_port makes this the second connection of a checkout (the vendor daemon), but backend "licenses" has neither "stick: source" nor "balance: source", so a client's two connections can reach two servers and the second server's vendor daemon denies the checkout; add "stick: source" to the backend`,
    ]);
    expect(loadConfigText(text('    balance: leastconn\n'), 'lic.yaml').warnings).toHaveLength(1);
    for (const ok of ['    stick: source\n', '    balance: source\n']) expect(loadConfigText(text(ok), 'lic.yaml').warnings).toEqual([]);
    expect(loadConfigText(text('', 1), 'lic.yaml').warnings).toEqual([]);
  });

  it('allow lists: a bad network, a prefix too long, host bits, a zone, an empty list, a scalar: each positioned, saying what was expected and found', () => {
    expect(
      issues(`frontends:
  - { name: lmgrd, listen: "127.0.0.1:27000", backend: licenses, allow: [10.0.0/8, lmhost, 10.0.0.0/8x] }
  - { name: vendor, listen: "127.0.0.1:27001", backend: licenses, allow: [10.0.0.0/33, "2001:db8::/129", "::1/-1"] }
  - { name: rlm, listen: "127.0.0.1:5053", backend: licenses, allow: [10.1.2.3/8, "2001:db8:17::1/48", "fe80::1%eth0/64"] }
status: { listen: "127.0.0.1:27100", allow: [] }
agent: { listen: "127.0.0.1:27101", backend: licenses, allow: 10.0.0.0/8 }
backends:
  - name: licenses
    servers: [{ name: a, address: "10.0.0.11:27000" }]
`),
    ).toEqual([
      'lic.yaml:5:45: status.allow: expected one or more source networks, like [10.0.0.0/8, 2001:db8:17::/48], found an empty list, which would refuse every client; remove "allow" to accept every address',
      'lic.yaml:6:63: agent.allow: expected a list, found "10.0.0.0/8"',
      'lic.yaml:2:74: frontend "lmgrd".allow[0]: expected an IPv4 or IPv6 address or network (10.0.0.0/8, 10.1.2.3, 2001:db8:17::/48), found "10.0.0/8"',
      'lic.yaml:2:84: frontend "lmgrd".allow[1]: expected an IPv4 or IPv6 address or network (10.0.0.0/8, 10.1.2.3, 2001:db8:17::/48), found "lmhost"',
      'lic.yaml:2:92: frontend "lmgrd".allow[2]: expected a prefix length 0-32 after "/" for an IPv4 address, found "8x"',
      'lic.yaml:3:75: frontend "vendor".allow[0]: expected a prefix length 0-32 after "/" for an IPv4 address, found "33"',
      'lic.yaml:3:88: frontend "vendor".allow[1]: expected a prefix length 0-128 after "/" for an IPv6 address, found "129"',
      'lic.yaml:3:106: frontend "vendor".allow[2]: expected a prefix length 0-128 after "/" for an IPv6 address, found "-1"',
      'lic.yaml:4:71: frontend "rlm".allow[0]: expected a network address for /8, found "10.1.2.3/8", which has host bits set; write 10.0.0.0/8 for the network or 10.1.2.3 for the host alone',
      'lic.yaml:4:83: frontend "rlm".allow[1]: expected a network address for /48, found "2001:db8:17::1/48", which has host bits set; write 2001:db8:17::/48 for the network or 2001:db8:17::1 for the host alone',
      'lic.yaml:4:104: frontend "rlm".allow[2]: expected a network without an interface zone, found "fe80::1%eth0/64": a zone is not compared (fe80::/10 admits link-local clients on every interface); remove "%eth0"',
    ]);
  });

  it('init_state: a value not among the four, and a state other than up with no check to move it', () => {
    expect(
      issues(`status: { listen: "127.0.0.1:27100" }
backends:
  - name: triad
    check: { type: tcp }
    servers:
      - { name: a, address: "10.0.0.1:27000", init_state: donw }
  - name: plain
    check: { type: none }
    servers:
      - { name: b, address: "10.0.0.2:27000", init_state: down }
      - { name: c, address: "10.0.0.3:27000", init_state: up }
`),
    ).toEqual([
      'lic.yaml:6:59: server "a".init_state: expected one of up | fully-up | down | fully-down, found "donw" (did you mean "down"?)',
      `lic.yaml:10:59: server "b".init_state: down needs a health check to move it, but the backend's check type is none; remove init_state or set a check`,
    ]);
  });

  it('a file that cannot be read is one positioned issue', () => {
    expect(() => loadConfigFile('/nonexistent/licgate.yaml')).toThrow(ConfigError);
    try {
      loadConfigFile('/nonexistent/licgate.yaml');
    } catch (e) {
      expect((e as ConfigError).issues.map(String)).toEqual([
        "/nonexistent/licgate.yaml:1:1: cannot read config: ENOENT: no such file or directory, open '/nonexistent/licgate.yaml'",
      ]);
    }
  });
});
