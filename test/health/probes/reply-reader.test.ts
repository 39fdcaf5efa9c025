import { describe, expect, it } from 'vitest';
import { ReplyReader, type ReplyEnd } from '../../../src/health/probes/reply-reader.js';

/** What each push returned, for reads cut from `bytes` at `cuts`; stops after the first true, as the probes do. */
function reads(end: ReplyEnd, bytes: Buffer, cuts: number[], limit = 1024, encoding: 'latin1' | 'utf8' = 'latin1'): { got: boolean[]; reader: ReplyReader } {
  const reader = new ReplyReader(end, limit, encoding);
  const got: boolean[] = [];
  const at = [0, ...cuts, bytes.length];
  for (let i = 0; i + 1 < at.length && !got.includes(true); i++) got.push(reader.push(bytes.subarray(at[i], at[i + 1])));
  return { got, reader };
}

const latin1 = (s: string) => Buffer.from(s, 'latin1');

describe('ReplyReader', () => {
  it('finds a literal cut anywhere across two reads, in the read that completes it and not before', () => {
    const reply = latin1('Backend: x\r\nServer Status: Running\r\nTier: active\r\n');
    const start = reply.indexOf('Server');
    const complete = start + 'Server Status: Running'.length;
    for (let cut = 1; cut < reply.length; cut++) {
      const { got } = reads({ literal: 'Server Status: Running' }, reply, [cut]);
      expect(got, `cut at ${cut}`).toEqual(cut >= complete ? [true] : [false, true]);
    }
  });

  it('finds a literal sent one byte a read at the byte that completes it', () => {
    const reply = latin1('..READY..');
    const { got } = reads({ literal: 'READY' }, reply, [1, 2, 3, 4, 5, 6, 7, 8]);
    expect(got).toEqual([false, false, false, false, false, false, true]);
  });

  it('matches a UTF-8 character cut across reads as that character, never as U+FFFD in between', () => {
    const reply = Buffer.from('status: café ok', 'utf8');
    const cut = reply.indexOf(0xc3) + 1; // between the two bytes of é
    expect(reads({ literal: 'café' }, reply, [cut], 1024, 'utf8').got).toEqual([false, true]);
    expect(reads({ regex: /café/ }, reply, [cut], 1024, 'utf8').got).toEqual([false, true]);
    // Decoding the whole reply at each read made the first "status: caf\uFFFD", which this matches.
    const { got, reader } = reads({ regex: /caf[^é]/ }, reply, [cut], 1024, 'utf8');
    expect(got).toEqual([false, false]);
    expect(reader.text()).toBe('status: café ok');
  });

  it('reads a check reply as latin1: a literal latin1 cannot encode never matches, whatever its UTF-8 bytes', () => {
    expect(reads({ literal: 'é' }, Buffer.from([0x41, 0xe9]), []).got).toEqual([true]);
    const { got, reader } = reads({ literal: '€' }, Buffer.from('price: €', 'utf8'), [9]);
    expect(got).toEqual([false, false]);
    expect(reader.ended()).toBe(false);
  });

  it('matches an expect whose last byte is the last one under the limit, and not one that runs past it', () => {
    const at16 = latin1(`${'x'.repeat(11)}READYzzz`);
    expect(reads({ literal: 'READY' }, at16, [], 16).got).toEqual([true]);
    expect(reads({ literal: 'READY' }, at16, [14], 16).got).toEqual([false, true]);
    expect(reads({ regex: /READY$/ }, at16, [14], 16).got).toEqual([false, true]);

    const past = reads({ literal: 'READY' }, latin1(`${'x'.repeat(12)}READY`), [14], 16);
    expect(past.got).toEqual([false, false]);
    expect(past.reader.full).toBe(true);
    expect(past.reader.size).toBe(16);
    expect(past.reader.text()).toBe(`${'x'.repeat(12)}READ`);
  });

  it('tries a regex on the whole reply after each read, so a match may start reads before it ends', () => {
    const reply = latin1(`START${'.'.repeat(100)}END`);
    expect(reads({ regex: /START.*END/ }, reply, [3, 50, 104]).got).toEqual([false, false, false, true]);
  });

  it('ends a line at the first CR or LF, in whichever read it comes', () => {
    expect(reads('line-end', latin1('up 50%\r\nignored\n'), [6]).got).toEqual([false, true]);
    expect(reads('line-end', latin1('drain\n'), [2]).got).toEqual([false, true]);
    expect(reads('line-end', latin1('drain'), [2]).got).toEqual([false, false]);
  });

  it('an empty reply the peer closed matches only a regex that matches nothing', () => {
    expect(new ReplyReader({ regex: /^$/ }, 1024, 'latin1').ended()).toBe(true);
    expect(new ReplyReader({ literal: 'READY' }, 1024, 'latin1').ended()).toBe(false);
    expect(new ReplyReader({ literal: 'READY' }, 1024, 'latin1').text()).toBe('');
  });
});
