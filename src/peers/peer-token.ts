import { readTokenFile } from '../config/admin-token.js';
import { LicgateError } from '../errors.js';

/**
 * peers.token_file's token, read as admin.token_file's is (trimmed, at least 16 printable
 * characters). Config load refused a file without one, so a problem here is an edit racing the
 * start or reload, which then fails with it.
 */
export function peersToken(file: string): string {
  const t = readTokenFile(file, 'peers.token_file');
  if ('problem' in t) throw new LicgateError('E_PEERS_TOKEN', t.problem);
  return t.token;
}
