import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import type { CheckConfig } from '../../src/config/schema.js';
import { ConfigError } from '../../src/errors.js';

/** A sidecar config whose only backend has the given check lines (YAML, indented under `check:`). */
function withCheck(checkLines: string): string {
  return `status:
  listen: 127.0.0.1:0
backends:
  - name: flexlm
    check:
${checkLines
  .trim()
  .split('\n')
  .map((l) => `      ${l}`)
  .join('\n')}
    servers:
      - { name: lic1, address: 127.0.0.1:27000 }
`;
}

function check(checkLines: string): CheckConfig {
  return loadConfigText(withCheck(checkLines), 'sidecar.yaml').backends[0]!.check;
}

/** The positioned issues (FILE:LINE:COL: message) of a config that must be rejected. */
function issues(checkLines: string): string[] {
  try {
    loadConfigText(withCheck(checkLines), 'sidecar.yaml');
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).issues.map(String);
  }
  throw new Error('expected a ConfigError, the config was accepted');
}

// withCheck puts the first check line on line 6, column 7.
const line = (n: number): number => 5 + n;

describe('check options: exec', () => {
  it('reads argv, parse and expect, and defaults to a 10 s timeout and a 1 MiB output limit', () => {
    const c = check(`
type: exec
argv: [/opt/flexlm/lmutil, lmstat, -a, -c, "{port}@{host}"]
parse: lmstat
expect: /license server UP/`);
    expect(c).toMatchObject({ type: 'exec', argv: ['/opt/flexlm/lmutil', 'lmstat', '-a', '-c', '{port}@{host}'], parse: 'lmstat', exit_code: 0, timeout: 10_000, read_limit: 1024 * 1024 });
    expect(c.expect).toEqual({ regex: /license server UP/ });
  });

  it('keeps an explicit timeout, read_limit and exit_code', () => {
    expect(check(`
type: exec
argv: [/usr/local/bin/rlm-ok]
exit_code: 3
timeout: 300ms
read_limit: 4096`)).toMatchObject({ timeout: 300, read_limit: 4096, exit_code: 3, parse: null });
  });

  it('leaves the defaults of other types alone (1 s timeout, 16 KiB read_limit)', () => {
    expect(check('type: tcp')).toMatchObject({ timeout: 1000, read_limit: 16 * 1024 });
  });

  it('rejects parse on a type other than exec, at the parse value', () => {
    expect(issues(`
type: tcp
parse: lmstat`)).toEqual([`sidecar.yaml:${line(2)}:14: backend "flexlm".check.parse: only used by type exec, but the type is tcp`]);
  });

  it('rejects an unknown parser with the known ones', () => {
    expect(issues(`
type: exec
argv: [lmutil]
parse: lmstats`)).toEqual([`sidecar.yaml:${line(3)}:14: backend "flexlm".check.parse: expected one of lmstat | dsls, found "lmstats" (did you mean "lmstat"?)`]);
  });

  it('rejects exit_code together with parse: the parser judges the text', () => {
    expect(issues(`
type: exec
argv: [lmutil, lmstat]
parse: lmstat
exit_code: 0`)).toEqual([
      `sidecar.yaml:${line(4)}:18: backend "flexlm".check.exit_code: not used with "parse", which judges health from the output (lmutil exits 0 even when a server is down); remove one`,
    ]);
  });

  it('rejects exit_code on a type other than exec', () => {
    expect(issues(`
type: http
exit_code: 0`)).toEqual([`sidecar.yaml:${line(2)}:18: backend "flexlm".check.exit_code: only used by type exec, but the type is http`]);
  });

  it('rejects an empty argv and an empty expect_status: they would validate, then fail every check', () => {
    expect(issues(`
type: exec
argv: []`)).toEqual([`sidecar.yaml:${line(2)}:13: backend "flexlm".check.argv: expected a command and its arguments, like [lmutil, lmstat, -a, -c, 27000@localhost], found an empty list`]);
    expect(issues(`
type: http
expect_status: []`)).toEqual([`sidecar.yaml:${line(2)}:22: backend "flexlm".check.expect_status: expected one or more HTTP status codes, like [200, 204], found an empty list`]);
  });

  it('reads env: strings and whole numbers as text, merged keys under the own ones', () => {
    expect(check(`
type: exec
argv: [/opt/dsls/wrapper]
env: { JAVA_HOME: /opt/java, FLEXLM_TIMEOUT: 1000000, LM_LICENSE_FILE: "27000@lic1" }`).env).toEqual({ JAVA_HOME: '/opt/java', FLEXLM_TIMEOUT: '1000000', LM_LICENSE_FILE: '27000@lic1' });
    expect(check(`
type: exec
argv: [lmutil]`).env).toEqual({});
  });

  it('rejects env on another type, a name a shell cannot set, LANG or LC_ALL, and a value that is not text', () => {
    expect(issues(`
type: tcp
env: { A: b }`)).toEqual([`sidecar.yaml:${line(2)}:12: backend "flexlm".check.env: only used by type exec, but the type is tcp`]);
    expect(issues(`
type: exec
argv: [lmutil]
env: { 1X: a, "A-B": b, LANG: de_DE.UTF-8, LC_ALL: C.UTF-8, JAVA_OPTS: [-Xmx1g], RATIO: 0.5, GOOD: ok }`)).toEqual([
      `sidecar.yaml:${line(3)}:14: backend "flexlm".check.env: expected a variable name (letters, digits and _, not starting with a digit), found "1X"`,
      `sidecar.yaml:${line(3)}:21: backend "flexlm".check.env: expected a variable name (letters, digits and _, not starting with a digit), found "A-B"`,
      `sidecar.yaml:${line(3)}:31: backend "flexlm".check.env.LANG: licgate runs checks with LANG and LC_ALL set to C, as its parsers read the tools' C-locale text; remove it`,
      `sidecar.yaml:${line(3)}:50: backend "flexlm".check.env.LC_ALL: licgate runs checks with LANG and LC_ALL set to C, as its parsers read the tools' C-locale text; remove it`,
      `sidecar.yaml:${line(3)}:78: backend "flexlm".check.env.JAVA_OPTS: expected a non-empty string, found a list`,
      `sidecar.yaml:${line(3)}:95: backend "flexlm".check.env.RATIO: expected a non-empty string, found number 0.5`,
    ]);
  });

  it('rejects a variable written twice in one env, where one value would be dropped unseen; a merged one the own key overrides is fine', () => {
    expect(issues(`
type: exec
argv: [lmutil]
env:
  LM_LICENSE_FILE: 27000@lic1
  LM_LICENSE_FILE: 27000@lic2`)).toEqual([`sidecar.yaml:${line(5)}:9: backend "flexlm".check.env: duplicate key "LM_LICENSE_FILE"`]);
    const cfg = loadConfigText(`status: { listen: "127.0.0.1:0" }
backends:
  - name: a
    check: { type: exec, argv: [lmutil], env: &env { LM_LICENSE_FILE: 27000@lic1, JAVA_HOME: /opt/java } }
    servers: [{ name: s, address: "10.0.0.1:27000" }]
  - name: b
    check: { type: exec, argv: [lmutil], env: { <<: *env, LM_LICENSE_FILE: 27000@lic2 } }
    servers: [{ name: s, address: "10.0.0.2:27000" }]
`, 'sidecar.yaml');
    expect(cfg.backends[1]!.check.env).toEqual({ LM_LICENSE_FILE: '27000@lic2', JAVA_HOME: '/opt/java' });
  });

  it('still requires argv for exec', () => {
    expect(issues(`
type: exec
parse: dsls`)).toEqual([`sidecar.yaml:${line(1)}:7: backend "flexlm".check: type exec needs "argv", a list like [lmutil, lmstat, -a, -c, 27000@localhost]`]);
  });
});

describe('check options: http', () => {
  it('reads path, expect_status (list or single) and a body regex', () => {
    expect(check(`
type: http
path: /goform/rlmstat_lic
expect_status: [200, 204]
expect: /ISV \\w+ running/`)).toMatchObject({ type: 'http', path: '/goform/rlmstat_lic', expect_status: [200, 204], expect: { regex: /ISV \w+ running/ } });
    expect(check(`
type: http
expect_status: 204`)).toMatchObject({ path: '/', expect_status: [204] });
  });

  it('rejects path and expect_status on other types, each at its own value', () => {
    expect(issues(`
type: exec
argv: [lmutil, lmstat]
path: /status
expect_status: [200]`)).toEqual([
      `sidecar.yaml:${line(3)}:13: backend "flexlm".check.path: only used by type http, but the type is exec`,
      `sidecar.yaml:${line(4)}:22: backend "flexlm".check.expect_status: only used by type http, but the type is exec`,
    ]);
  });

  it('rejects a path without a leading slash and a status out of range', () => {
    expect(issues(`
type: http
path: status
expect_status: [200, 700]`)).toEqual([
      `sidecar.yaml:${line(2)}:13: backend "flexlm".check.path: expected a path starting with /, found "status"`,
      `sidecar.yaml:${line(3)}:28: backend "flexlm".check.expect_status[1]: expected a whole number 100-599, found 700`,
    ]);
  });

});

describe('check options on a type that would ignore them', () => {
  it('rejects send, expect and read_limit where the type never uses them, as HAProxy\'s tcp-check send/expect on type tcp', () => {
    // An HAProxy admin writes tcp-check's send and expect on type tcp: the check then only connected, and
    // a license server whose port accepts but whose lmgrd is hung stayed UP.
    expect(issues(`
type: tcp
send: "STATUS\\r\\n"
expect: "Server Status: Running"
read_limit: 4096`)).toEqual([
      `sidecar.yaml:${line(2)}:13: backend "flexlm".check.send: only used by types send-expect and agent, but the type is tcp (tcp-check's send/expect: type send-expect)`,
      `sidecar.yaml:${line(3)}:15: backend "flexlm".check.expect: only used by types send-expect, http and exec, but the type is tcp (tcp-check's send/expect: type send-expect)`,
      `sidecar.yaml:${line(4)}:19: backend "flexlm".check.read_limit: only used by types send-expect, status, http, exec and agent, but the type is tcp`,
    ]);
    // status sends its own STATUS line and expects its own answer.
    expect(issues(`
type: status
expect: "Tier: active"`)).toEqual([
      `sidecar.yaml:${line(2)}:15: backend "flexlm".check.expect: only used by types send-expect, http and exec, but the type is status`,
    ]);
    expect(issues(`
type: exec
argv: [lmutil, lmstat]
send: "x"`)).toEqual([`sidecar.yaml:${line(3)}:13: backend "flexlm".check.send: only used by types send-expect and agent, but the type is exec`]);
    // Where they are used, they are accepted.
    expect(check('type: send-expect\nsend: "STATUS\\r\\n"\nexpect: Running\nread_limit: 4096')).toMatchObject({ send: 'STATUS\r\n', expect: { literal: 'Running' }, read_limit: 4096 });
    expect(check('type: agent\nport: 27200\nsend: "flexlm\\n"').send).toBe('flexlm\n');
    expect(check('type: http\nexpect: /ok/').expect).toEqual({ regex: /ok/ });
  });

  it('a misspelt type is one error, not one more for every option of the intended type', () => {
    expect(issues(`
type: exce
argv: [lmutil, lmstat]
parse: lmstat
expect: UP`)).toEqual([`sidecar.yaml:${line(1)}:13: backend "flexlm".check.type: expected one of tcp | status | send-expect | http | exec | agent | none, found "exce" (did you mean "exec"?)`]);
  });

  it('reports every misplaced option of a check in one pass', () => {
    expect(issues(`
type: status
parse: dsls
path: /
argv: [x]`)).toHaveLength(3);
  });
});
