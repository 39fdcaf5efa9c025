const CRLF = Buffer.from('STATUS\r\n');
const LF = Buffer.from('STATUS\n');
const S = 0x53;

export type SniffVerdict = 'status' | 'partial' | 'other';

/**
 * Are the first client bytes a STATUS request? 'partial' while they are still a proper prefix of
 * one (TCP may split even 8 bytes), 'other' as soon as they cannot be one.
 */
export function sniffStatus(buf: Buffer): SniffVerdict {
  // Nearly every session starts with something else: one byte decides it without two compares in C++.
  if (buf.length > 0 && buf[0] !== S) return 'other';
  if (startsWith(buf, CRLF) || startsWith(buf, LF)) return 'status';
  if (isPrefixOf(buf, CRLF) || isPrefixOf(buf, LF)) return 'partial';
  return 'other';
}

function startsWith(buf: Buffer, line: Buffer): boolean {
  return buf.length >= line.length && buf.compare(line, 0, line.length, 0, line.length) === 0;
}

function isPrefixOf(buf: Buffer, line: Buffer): boolean {
  return buf.length < line.length && line.compare(buf, 0, buf.length, 0, buf.length) === 0;
}
