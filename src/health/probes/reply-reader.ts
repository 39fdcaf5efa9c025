import { StringDecoder } from 'node:string_decoder';
import type { Matcher } from '../../config/schema.js';
import { appendBytes } from '../../io/append-bytes.js';

/** What a check reads a reply for: its `expect`, or the end of the first line (an agent's reply). */
export type ReplyEnd = Matcher | 'line-end';

const CR = 0x0d;
const LF = 0x0a;

/**
 * A check's reply as it arrives, kept up to `limit` bytes, and whether `end` has been found in it.
 * The bytes go into one buffer that at least doubles when it grows (appendBytes), and each read is
 * searched only where a match can be new: for a literal, from its length less one byte before the
 * new bytes; for a line end, in the new bytes. Rebuilding and searching the whole reply on every
 * read let a server that trickles 16 bytes at a time up to a 1 MiB read_limit take seconds of CPU
 * in one check, from the event loop the proxied sessions run on.
 *
 * A regex can match anywhere, and with `$` or a lookahead can stop matching as text arrives, so it
 * is still tried on the whole text after each read, as HAProxy's `tcp-check expect rstring` runs
 * on its buffer each time data arrives; only the new bytes are decoded into that text, and a
 * character split across reads is decoded whole, not as U+FFFD in between.
 */
export class ReplyReader {
  /** Bytes kept so far: at most the limit. */
  size = 0;
  private store: Buffer | null = null;
  private readonly found: ((bytes: Buffer, from: number) => boolean) | null;

  constructor(end: ReplyEnd | null, private readonly limit: number, private readonly encoding: 'latin1' | 'utf8') {
    this.found = end === null ? null : finder(end, encoding);
  }

  /** Keeps what fits of `chunk` under the limit; true when that completes the end (stop reading then). */
  push(chunk: Buffer): boolean {
    const from = this.size;
    const piece = this.limit - from < chunk.length ? chunk.subarray(0, this.limit - from) : chunk;
    this.store = appendBytes(this.store, this.bytes(), piece, this.limit);
    this.size += piece.length;
    return this.found !== null && this.found(this.bytes(), from);
  }

  /**
   * Whether the end is found in the reply as it stands, with nothing new: for a peer that closed
   * without sending anything, whose empty reply a regex such as /^$/ matches.
   */
  ended(): boolean {
    return this.found !== null && this.found(this.bytes(), this.size);
  }

  get full(): boolean {
    return this.size >= this.limit;
  }

  text(): string {
    return this.bytes().toString(this.encoding);
  }

  private bytes(): Buffer {
    return this.store === null ? Buffer.alloc(0) : this.store.subarray(0, this.size);
  }
}

/** Whether the first `bytes.length` bytes hold `end`, given that the first `from` did not. */
function finder(end: ReplyEnd, encoding: 'latin1' | 'utf8'): (bytes: Buffer, from: number) => boolean {
  if (end === 'line-end') return (bytes, from) => bytes.indexOf(LF, from) !== -1 || bytes.indexOf(CR, from) !== -1;
  if ('literal' in end) {
    const needle = Buffer.from(end.literal, encoding);
    // Only where bytes and text match alike: a literal that latin1 cannot encode, with a lone
    // surrogate, or with U+FFFD (what undecodable bytes read as) is matched as text below.
    if (needle.toString(encoding) === end.literal && !end.literal.includes('\uFFFD')) {
      return (bytes, from) => bytes.indexOf(needle, Math.max(0, from - needle.length + 1)) !== -1;
    }
  }
  const decoder = new StringDecoder(encoding);
  let text = '';
  return (bytes, from) => {
    text += decoder.write(bytes.subarray(from));
    return matches(end, text);
  };
}

export function matches(m: Matcher, text: string): boolean {
  if ('literal' in m) return text.includes(m.literal);
  // A sticky (/y) regex matches from lastIndex, which test() moves: from 0 every time, or the
  // checks of a server would pass and fail by turns.
  m.regex.lastIndex = 0;
  return m.regex.test(text);
}
