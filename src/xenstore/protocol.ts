/**
 * The xenstore wire protocol (xen/include/public/io/xs_wire.h): a header of four little-endian
 * u32 (type, request id, transaction id, payload length) and a payload of NUL-separated strings.
 * Shared by xennet's client and the simulated xenstored.
 */

export const XsType = {
  CONTROL: 0,
  DIRECTORY: 1,
  READ: 2,
  GET_PERMS: 3,
  WATCH: 4,
  UNWATCH: 5,
  TRANSACTION_START: 6,
  TRANSACTION_END: 7,
  INTRODUCE: 8,
  RELEASE: 9,
  GET_DOMAIN_PATH: 10,
  WRITE: 11,
  MKDIR: 12,
  RM: 13,
  SET_PERMS: 14,
  WATCH_EVENT: 15,
  ERROR: 16,
  IS_DOMAIN_INTRODUCED: 17,
  RESUME: 18,
  SET_TARGET: 19,
  RESET_WATCHES: 21,
  DIRECTORY_PART: 22,
} as const;

export const HEADER_SIZE = 16;
/** XENSTORE_PAYLOAD_MAX */
export const PAYLOAD_MAX = 4096;

export interface XsMessage {
  type: number;
  reqId: number;
  txId: number;
  payload: Buffer;
}

export function encodeMessage(m: XsMessage): Buffer {
  const header = Buffer.alloc(HEADER_SIZE);
  header.writeUInt32LE(m.type, 0);
  header.writeUInt32LE(m.reqId >>> 0, 4);
  header.writeUInt32LE(m.txId >>> 0, 8);
  header.writeUInt32LE(m.payload.length, 12);
  return Buffer.concat([header, m.payload]);
}

/** Accumulates stream bytes and yields whole messages. */
export class MessageReader {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): XsMessage[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: XsMessage[] = [];
    while (this.buf.length >= HEADER_SIZE) {
      const len = this.buf.readUInt32LE(12);
      if (len > PAYLOAD_MAX) throw new Error(`xenstore message of ${len} bytes exceeds the ${PAYLOAD_MAX}-byte limit`);
      if (this.buf.length < HEADER_SIZE + len) break;
      out.push({
        type: this.buf.readUInt32LE(0),
        reqId: this.buf.readUInt32LE(4),
        txId: this.buf.readUInt32LE(8),
        payload: Buffer.from(this.buf.subarray(HEADER_SIZE, HEADER_SIZE + len)),
      });
      this.buf = this.buf.subarray(HEADER_SIZE + len);
    }
    return out;
  }
}

/** `a\0b\0` -> ['a', 'b'] (a trailing NUL does not make an empty last string). */
export function splitStrings(payload: Buffer): string[] {
  const text = payload.toString('utf8');
  const parts = text.split('\0');
  if (parts.length > 0 && parts[parts.length - 1] === '') parts.pop();
  return parts;
}

export function joinStrings(parts: readonly string[], trailingNul = true): Buffer {
  return Buffer.from(parts.join('\0') + (trailingNul ? '\0' : ''), 'utf8');
}

/** The domain path relative paths resolve under (xennet runs in dom0). */
export const DOM0_PATH = '/local/domain/0';

export function absolutePath(path: string, base = DOM0_PATH): string {
  return path.startsWith('/') ? path : `${base}/${path}`;
}

/**
 * A valid xenstore path: absolute or relative, segments of [A-Za-z0-9_@-.], no empty segments,
 * at most 3072 bytes (XENSTORE_ABS_PATH_MAX). `@`-prefixed special watch paths are allowed.
 */
export function isValidPath(path: string): boolean {
  if (path.length === 0 || path.length > 3072) return false;
  if (path.startsWith('@')) return /^@[A-Za-z0-9_-]+$/.test(path);
  const body = path.startsWith('/') ? path.slice(1) : path;
  if (body === '') return path === '/';
  return body.split('/').every((seg) => /^[A-Za-z0-9_@.-]+$/.test(seg));
}
