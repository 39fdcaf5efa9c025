/**
 * Errors that say this host ran out of something (descriptors, buffers, local ports), not that the
 * peer failed. Health must never be charged for them: a licgate short of descriptors would
 * otherwise mark every healthy license server DOWN.
 */
// EAGAIN: from connect(2) on TCP, no free local port; from fork(2) (an exec check), the process limit.
const LOCAL_RESOURCE_ERRORS = new Set(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM', 'EADDRNOTAVAIL', 'EAGAIN']);

export function isLocalResourceError(code: string | undefined): boolean {
  return code !== undefined && LOCAL_RESOURCE_ERRORS.has(code);
}
