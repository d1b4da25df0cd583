/**
 * Reading a file the config names (the config itself, the secret, a CA bundle) without trusting
 * it to be small or to end: a stat's size says nothing for /dev/zero (0, and endless), a FIFO or
 * a procfs file, and readFileSync on them hangs or fills the memory. So: a regular file only, and
 * at most one byte past the limit is ever read.
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { describeError } from '../errors';

/** The bytes, or why there are none: an errno name, or what is wrong with the file, in words. */
export type BoundedRead =
  | { readonly bytes: Buffer; readonly why?: undefined }
  | { readonly bytes?: undefined; readonly why: string };

/** What a file that is not a regular one is, for the message. */
function kindOf(stats: Stats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isSocket()) return 'a socket';
  return 'not a file';
}

/**
 * `file`'s bytes if it is a regular file of at most `maxBytes`; `what` names such a file in the
 * message ("a config file").
 */
export function readBounded(file: string, maxBytes: number, what: string): BoundedRead {
  const tooBig = (size: string) => ({ why: `it holds ${size} bytes; ${what} is at most ${maxBytes} bytes` });
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO would otherwise wait for a writer (regular files ignore it).
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    return { why: describeError(err) };
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) return { why: `${kindOf(stats)}, not a regular file` };
    if (stats.size > maxBytes) return tooBig(String(stats.size));
    // The size may be wrong (procfs says 0) or grow meanwhile: read one byte more than allowed.
    const buffer = Buffer.alloc(maxBytes + 1);
    let length = 0;
    while (length < buffer.length) {
      const n = readSync(fd, buffer, length, buffer.length - length, null);
      if (n === 0) break;
      length += n;
    }
    if (length > maxBytes) return tooBig(`more than ${maxBytes}`);
    return { bytes: Buffer.from(buffer.subarray(0, length)) };
  } catch (err) {
    return { why: describeError(err) };
  } finally {
    closeSync(fd);
  }
}
