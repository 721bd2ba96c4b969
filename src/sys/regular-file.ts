/** Reading a small file that another process (or user) may have replaced with something hostile. */
import { closeSync, constants, fstatSync, openSync, readSync, type BigIntStats } from 'node:fs';

/**
 * The bytes of the regular file at `path` and its stat, through one descriptor, without following
 * a symbolic link (a link to /dev/zero would fill the reader's memory) or waiting on a FIFO (it
 * would block the reader). `bytes` is undefined when the file holds more than `maxBytes` (as far as
 * the read saw: one that grows while it is read is read up to its size at the open, plus a byte).
 * Undefined when there is no regular file there, or it cannot be opened or read.
 */
export function readRegularFile(path: string, maxBytes: number): { bytes: Buffer | undefined; stat: BigIntStats } | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const stat = fstatSync(fd, { bigint: true });
    if (!stat.isFile()) return undefined;
    if (stat.size > BigInt(maxBytes)) return { bytes: undefined, stat };
    const buf = Buffer.allocUnsafe(Number(stat.size) + 1);
    let n = 0;
    for (let got = -1; got !== 0 && n < buf.length; n += got) got = readSync(fd, buf, n, buf.length - n, n);
    return { bytes: n > maxBytes ? undefined : buf.subarray(0, n), stat };
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
