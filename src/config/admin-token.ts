import { readFileSync, statSync } from 'node:fs';

const MIN_TOKEN_LENGTH = 16;

/**
 * The admin token held in `admin.token_file`, or what is wrong with it, for `validate` and for the
 * daemon alike. Line ends around it are dropped (editors add one). It travels as `Authorization:
 * Bearer <token>`, which ends at a space and is refused by browsers outside printable ASCII, so a
 * token with either could never be presented: every call would get 401.
 */
export function readTokenFile(file: string): { token: string } | { problem: string } {
  let token: string;
  try {
    token = readFileSync(file, 'utf8').trim();
  } catch (e) {
    return { problem: `admin.token_file: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
  }
  if (token.length < MIN_TOKEN_LENGTH) return { problem: `admin.token_file: expected a token of at least ${MIN_TOKEN_LENGTH} characters in ${file}, found ${token.length}` };
  const bad = /[^\x21-\x7e]/.exec(token);
  if (bad) {
    const what = /\s/.test(bad[0]) ? 'a space' : `"${bad[0]}"`;
    return { problem: `admin.token_file: expected a token of printable ASCII without spaces in ${file} (it is sent as "Authorization: Bearer <token>"), found ${what} at character ${bad.index + 1}` };
  }
  return { token };
}

/**
 * A warning when every local user can read the token, and so drain servers or reload: `echo ... >
 * file` under the usual umask 022 makes such a file. A warning, not a refusal, so that an upgrade
 * does not stop a running setup.
 */
export function tokenFileWarning(file: string | null): string | null {
  if (file === null) return null;
  let mode: number;
  try {
    mode = statSync(file).mode & 0o777;
  } catch {
    return null; // readTokenFile reports an unreadable file
  }
  if ((mode & 0o004) === 0) return null;
  return `admin.token_file ${file} is readable by every user on this host (mode 0${mode.toString(8)}): any of them can drain servers or reload; chmod o-r ${file}`;
}
