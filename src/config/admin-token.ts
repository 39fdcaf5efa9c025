import { createHash, timingSafeEqual } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { notRegularFile, READ_NO_WAIT } from '../io/regular-file.js';

const MIN_TOKEN_LENGTH = 16;
/** A token is a line; a bigger file (a path to /dev/zero, a log) is not read on. */
const MAX_TOKEN_FILE_BYTES = 4096;

/**
 * The admin token held in `admin.token_file`, or what is wrong with it, for `validate` and for the
 * daemon alike. Line ends around it are dropped (editors add one). It travels as `Authorization:
 * Bearer <token>`, which ends at a space and is refused by browsers outside printable ASCII, so a
 * token with either could never be presented: every call would get 401.
 */
export function readTokenFile(file: string, key = 'admin.token_file'): { token: string } | { problem: string } {
  let token: string;
  try {
    const fd = openSync(file, READ_NO_WAIT);
    try {
      const other = notRegularFile(fstatSync(fd));
      if (other !== null) return { problem: `${key}: expected a regular file at ${file}, found ${other}` };
      const buf = Buffer.alloc(MAX_TOKEN_FILE_BYTES + 1);
      const n = readSync(fd, buf, 0, buf.length, 0);
      if (n > MAX_TOKEN_FILE_BYTES) return { problem: `${key}: expected a token of one line in ${file}, found a file over ${MAX_TOKEN_FILE_BYTES} bytes` };
      token = buf.toString('utf8', 0, n).trim();
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    return { problem: `${key}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
  }
  if (token.length < MIN_TOKEN_LENGTH) return { problem: `${key}: expected a token of at least ${MIN_TOKEN_LENGTH} characters in ${file}, found ${token.length}` };
  const bad = /[^\x21-\x7e]/.exec(token);
  if (bad) {
    const what = /\s/.test(bad[0]) ? 'a space' : `"${bad[0]}"`;
    return { problem: `${key}: expected a token of printable ASCII without spaces in ${file}${key === 'admin.token_file' ? ' (it is sent as "Authorization: Bearer <token>")' : ''}, found ${what} at character ${bad.index + 1}` };
  }
  return { token };
}

/**
 * A warning when every local user can read the token, and so drain servers or reload (`echo ... >
 * file` under the usual umask 022 makes such a file), or write one of their own. A warning, not a
 * refusal, so that an upgrade does not stop a running setup.
 */
export function tokenFileWarning(file: string | null, key = 'admin.token_file'): string | null {
  if (file === null) return null;
  let mode: number;
  try {
    mode = statSync(file).mode & 0o777;
  } catch {
    return null; // readTokenFile reports an unreadable file
  }
  const read = (mode & 0o004) !== 0;
  const write = (mode & 0o002) !== 0;
  if (!read && !write) return null;
  const what = read && write ? 'readable and writable' : read ? 'readable' : 'writable';
  const can = key !== 'admin.token_file' ? (read ? 'any of them can push stick entries to this host' : 'any of them can put in a token of their own, taken at the next reload') : read ? 'any of them can drain servers or reload' : 'any of them can put in a token of their own, taken at the next reload';
  return `${key} ${file} is ${what} by every user on this host (mode 0${mode.toString(8)}): ${can}; chmod o-${read ? 'r' : ''}${write ? 'w' : ''} ${file}`;
}

/**
 * Whether a presented token is the token held, compared in a time that depends neither on where
 * they differ nor on their lengths (digests of equal length): the admin bearer check and a peers
 * token rotation alike.
 */
export function sameToken(a: string, b: string): boolean {
  return timingSafeEqual(sha256(a), sha256(b));
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
