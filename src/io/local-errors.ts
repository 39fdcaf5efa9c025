/**
 * Errors that say this host ran out of something (descriptors, buffers, local ports), not that the
 * peer failed. Health must never be charged for them: a licgate short of descriptors would
 * otherwise mark every healthy license server DOWN.
 */
const LOCAL_RESOURCE_ERRORS = new Set(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM', 'EADDRNOTAVAIL']);

export function isLocalResourceError(code: string | undefined): boolean {
  return code !== undefined && LOCAL_RESOURCE_ERRORS.has(code);
}
