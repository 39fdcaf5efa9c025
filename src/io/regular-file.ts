import { constants, type Stats } from 'node:fs';

/**
 * Flags to open a file licgate reads whole (the admin token, the VRRP state): O_NONBLOCK, because
 * opening or reading a FIFO otherwise waits for a writer, which froze the daemon at a reload (a
 * synchronous read) or held a libuv pool thread per /status call (an asynchronous one).
 */
export const READ_NO_WAIT = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY;

/** Null for a regular file, else what expected-and-found messages say it is instead. */
export function notRegularFile(stats: Stats): string | null {
  if (stats.isFile()) return null;
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isSocket()) return 'a socket';
  if (stats.isCharacterDevice() || stats.isBlockDevice()) return 'a device';
  return 'not a regular file';
}
