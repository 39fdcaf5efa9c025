import { describe, expect, it } from 'vitest';
import { sniffStatus } from '../../src/proxy/status-sniff.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

describe('in-band STATUS sniffing', () => {
  it('exactly STATUS\\r\\n or STATUS\\n is a STATUS request', () => {
    expect(sniffStatus(b('STATUS\r\n'))).toBe('status');
    expect(sniffStatus(b('STATUS\n'))).toBe('status');
  });

  it('every proper prefix is partial (TCP may split even 8 bytes)', () => {
    for (const full of ['STATUS\r\n', 'STATUS\n']) {
      for (let i = 1; i < full.length; i++) expect(sniffStatus(b(full.slice(0, i))), JSON.stringify(full.slice(0, i))).toBe('partial');
    }
  });

  it('anything else is other as soon as it cannot be STATUS', () => {
    for (const s of ['STATUSX', 'STATUS\rX', 'STATUS ', 'status\r\n', 'Status\n', 'STATS', 'X', '\x00\x01', 'HELLO\n', ' STATUS\n']) {
      expect(sniffStatus(b(s)), JSON.stringify(s)).toBe('other');
    }
  });
});
