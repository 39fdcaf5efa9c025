import type { IncomingMessage } from 'node:http';
import { sameToken } from '../config/admin-token.js';

export type BearerVerdict = 'ok' | 'missing' | 'wrong' | 'unconfigured';

/**
 * The bearer-token check for mutating admin calls: 'unconfigured' (no admin.token_file: answer
 * 403), 'missing' (no or malformed Authorization header: 401), 'wrong' (401), 'ok'. sameToken keeps
 * the comparison constant-time whatever the presented token's length.
 */
export function checkBearer(req: IncomingMessage, token: string | null): BearerVerdict {
  if (token === null) return 'unconfigured';
  const header = req.headers.authorization;
  const m = header === undefined ? null : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  if (!m) return 'missing';
  return sameToken(m[1]!, token) ? 'ok' : 'wrong';
}

/** HTTP status and message for a refused verdict, in the words admin-api.ts uses. */
export function bearerRefusal(v: Exclude<BearerVerdict, 'ok'>): { status: number; code: string; error: string } {
  switch (v) {
    case 'unconfigured':
      return { status: 403, code: 'E_ADMIN_DISABLED', error: 'the admin API is read-only: set admin.token_file to allow changes' };
    case 'missing':
      return { status: 401, code: 'E_ADMIN_NO_TOKEN', error: 'expected an "Authorization: Bearer <token>" header, found none or a malformed one' };
    case 'wrong':
      return { status: 401, code: 'E_ADMIN_BAD_TOKEN', error: 'the bearer token does not match the one licgate read from admin.token_file (at start or at the last reload: a token written there since takes effect at the next reload)' };
  }
}
