import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

const VALID = `admin:
  listen: 127.0.0.1:8404
status:
  listen: 127.0.0.1:0
log: { level: info, format: json }
shutdown_grace: 30s
frontends:
  - name: lmgrd
    listen: 127.0.0.1:0
    backend: licenses
    server_port: 27001
backends:
  - name: licenses
    balance: roundrobin
    stick: source
    failback: manual
    retries: 2
    check: { type: status, inter: 2s, fastinter: 500ms, downinter: 5s, rise: 2, fall: 3, timeout: 1s }
    servers:
      - { name: primary, address: 10.0.0.11:27000, weight: 100 }
      - { name: backup,  address: 10.0.0.12:27000, weight: 50, backup: true }
      - { name: dr-site, address: "[2001:db8::1]:27000", tier: 2 }
`;

/** Every outcome must be a frozen config or a ConfigError whose every issue is FILE:LINE:COL positioned inside the text. */
function assertWellBehaved(text: string): void {
  let result: unknown;
  try {
    result = loadConfigText(text, 'fuzz.yaml');
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    const lines = text.split('\n').length;
    for (const issue of (e as ConfigError).issues) {
      expect(String(issue)).toMatch(/^fuzz\.yaml:\d+:\d+: \S/);
      expect(issue.pos.line).toBeGreaterThanOrEqual(1);
      expect(issue.pos.line).toBeLessThanOrEqual(lines + 1);
    }
    return;
  }
  expect(Object.isFrozen(result)).toBe(true);
}

describe('config loader under fuzzing', () => {
  it('accepts the valid base config', () => {
    expect(loadConfigText(VALID, 'fuzz.yaml').backends[0]!.servers).toHaveLength(3);
  });

  it('never throws anything but a positioned ConfigError for mutated configs', () => {
    const lines = VALID.split('\n');
    const mutation = fc.oneof(
      // Replace a line's value part with an arbitrary scalar.
      fc.tuple(fc.constant('value' as const), fc.nat(lines.length - 1), fc.oneof(fc.string(), fc.integer().map(String), fc.constantFrom('~', '[]', '{}', '-1', '257', '1e9', 'yes', '"', "'", '&a', '*a', '!!binary x', '[1, {a: b}]'))),
      // Delete a line.
      fc.tuple(fc.constant('delete' as const), fc.nat(lines.length - 1), fc.constant('')),
      // Duplicate a line.
      fc.tuple(fc.constant('dup' as const), fc.nat(lines.length - 1), fc.constant('')),
      // Insert random text at a line.
      fc.tuple(fc.constant('insert' as const), fc.nat(lines.length - 1), fc.string({ maxLength: 40 })),
      // Re-indent a line.
      fc.tuple(fc.constant('indent' as const), fc.nat(lines.length - 1), fc.constantFrom('', ' ', '   ', '\t', '      ')),
    );
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (muts) => {
        const out = [...lines];
        for (const [kind, i, text] of muts) {
          const at = Math.min(i, out.length - 1);
          if (kind === 'value') out[at] = out[at]!.replace(/:\s.*$/, `: ${text}`);
          else if (kind === 'delete') out.splice(at, 1);
          else if (kind === 'dup') out.splice(at, 0, out[at]!);
          else if (kind === 'insert') out.splice(at, 0, text);
          else out[at] = text + out[at]!.trimStart();
        }
        assertWellBehaved(out.join('\n'));
      }),
      { numRuns: 1500 },
    );
  });

  it('never throws anything but a positioned ConfigError for random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => assertWellBehaved(Buffer.from(bytes).toString('latin1'))),
      { numRuns: 1000 },
    );
    fc.assert(fc.property(fc.string({ maxLength: 300 }), assertWellBehaved), { numRuns: 1000 });
  });
});
