/**
 * Writes to nf_tables over nfnetlink as one batch: NFNL_MSG_BATCH_BEGIN, the messages, and
 * NFNL_MSG_BATCH_END in one datagram, which the kernel applies as one transaction (every message
 * or none). Each message asks for an acknowledgement, so that the one the kernel refused is
 * named in the error.
 *
 * The kernel takes a batch only whole, in one datagram, and a datagram only up to the socket's
 * send buffer, which a process without SO_SNDBUFFORCE (nft uses it; Node's netlink binding cannot)
 * gets up to twice net.core.wmem_max: `capacity()` says how large a batch may be.
 */
import netlink from 'netlink';
import { XennetError } from '../../sys/errors.js';
import { killPoint } from '../../sys/test-seams.js';
import { nfgenmsg } from './nftables.js';

const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_NFTABLES = 10;
const NFNL_MSG_BATCH_BEGIN = 0x10;
const NFNL_MSG_BATCH_END = 0x11;
const NLMSG_ERROR = 2;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const REPLY_TIMEOUT_MS = 30_000;
/** What the kernel keeps of a socket's send buffer for itself (netlink_sendmsg's `sk_sndbuf - 32`), and a margin. */
const SNDBUF_RESERVE = 64;
/** The send buffer asked for: the kernel gives at most twice net.core.wmem_max. */
const SNDBUF_WANTED = 64 * 1024 * 1024;

/** The bytes a message takes in a batch's datagram, and what the batch's begin and end add. */
export const messageSize = (m: NftMessage): number => 16 + ((m.body.length + 3) & ~3);
export const BATCH_OVERHEAD = 40;

/** One message of a batch: its NFT_MSG_* type, its flags beyond REQUEST and ACK, its body (nfgenmsg and attributes). */
export interface NftMessage {
  msg: number;
  flags: number;
  body: Buffer;
  /** What it does, for an error (`add rule bridge xennet XN-O-vif1.0 ...`). */
  what: string;
}

function header(len: number, type: number, flags: number, seq: number): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt32LE(len, 0);
  h.writeUInt16LE(type, 4);
  h.writeUInt16LE(flags, 6);
  h.writeUInt32LE(seq, 8);
  return h;
}

const pad4 = (b: Buffer): Buffer => (b.length % 4 === 0 ? b : Buffer.concat([b, Buffer.alloc(4 - (b.length % 4))]));

/** The batch's begin and end: family unspecified, resource id the nf_tables subsystem (big endian). */
function batchMarker(type: number, seq: number): Buffer {
  const body = Buffer.alloc(4);
  body.writeUInt16BE(NFNL_SUBSYS_NFTABLES, 2);
  return Buffer.concat([header(20, type, NLM_F_REQUEST, seq), body]);
}

/**
 * The datagram of a batch (pure), its messages numbered from `firstSeq`. Without its end
 * (`check`), the kernel checks every message and then aborts: nothing is applied (`nft -c`).
 */
export function batchDatagram(messages: readonly NftMessage[], firstSeq: number, check = false): Buffer {
  const parts: Buffer[] = [batchMarker(NFNL_MSG_BATCH_BEGIN, firstSeq)];
  messages.forEach((m, i) => {
    const body = pad4(m.body);
    parts.push(header(16 + body.length, (NFNL_SUBSYS_NFTABLES << 8) | m.msg, NLM_F_REQUEST | NLM_F_ACK | m.flags, firstSeq + 1 + i), body);
  });
  if (!check) parts.push(batchMarker(NFNL_MSG_BATCH_END, firstSeq + messages.length + 1));
  return Buffer.concat(parts);
}

const ERRNO_NAMES: Readonly<Record<number, string>> = { 1: 'EPERM', 2: 'ENOENT', 7: 'E2BIG', 12: 'ENOMEM', 16: 'EBUSY', 17: 'EEXIST', 22: 'EINVAL', 34: 'ERANGE', 75: 'EOVERFLOW', 90: 'EMSGSIZE', 93: 'EPROTONOSUPPORT', 95: 'EOPNOTSUPP' };

export class NftBatchWriter {
  private readonly sock = netlink.createNetlink(NETLINK_NETFILTER, { recvBufferSize: 8 * 1024 * 1024, sendBufferSize: SNDBUF_WANTED, messagePeeking: false, msgBufferSize: 65536 });
  private seq = (Date.now() & 0x3fffffff) >>> 0;
  private busy: Promise<unknown> = Promise.resolve();

  constructor() {
    this.sock.on('error', () => undefined);
  }

  close(): void {
    this.sock.close();
  }

  /** The largest datagram, so the largest batch, this socket can send. */
  capacity(): number {
    return this.sock.getSendBufferSize() - SNDBUF_RESERVE;
  }

  /** Whether these messages fit in one batch. */
  fits(messages: readonly NftMessage[]): boolean {
    return BATCH_OVERHEAD + messages.reduce((n, m) => n + messageSize(m), 0) <= this.capacity();
  }

  /** Applies the messages as one transaction; rejects, naming the message refused, when the kernel refuses it (then nothing of it applied). */
  commit(messages: readonly NftMessage[]): Promise<void> {
    return this.serial(messages, false);
  }

  /** Has the kernel check the messages as a transaction and apply nothing; rejects as `commit` would. */
  check(messages: readonly NftMessage[]): Promise<void> {
    return this.serial(messages, true);
  }

  private serial(messages: readonly NftMessage[], check: boolean): Promise<void> {
    const run = this.busy.then(
      () => this.send(messages, check),
      () => this.send(messages, check),
    );
    this.busy = run.catch(() => undefined);
    return run;
  }

  private send(messages: readonly NftMessage[], check: boolean): Promise<void> {
    if (messages.length === 0) return Promise.resolve();
    const first = this.seq;
    this.seq = (this.seq + messages.length + 2) % 0x7fffffff;
    const datagram = batchDatagram(messages, first, check);
    if (datagram.length > this.capacity()) {
      return Promise.reject(new XennetError('netlink', `an nf_tables transaction of ${datagram.length} bytes is larger than a netlink datagram may be here (${this.capacity()} bytes)`, { hint: 'raise net.core.wmem_max' }));
    }
    const pending = new Set<number>(messages.map((_, i) => first + 1 + i));
    return new Promise<void>((resolve, reject) => {
      let refused: { index: number; errno: number } | undefined;
      const done = (err?: Error): void => {
        clearTimeout(timer);
        this.sock.off('message', onMessage);
        this.sock.ref(false);
        if (err) reject(err);
        else resolve();
      };
      const finish = (): void => {
        if (refused) {
          const m = messages[refused.index]!;
          const name = ERRNO_NAMES[refused.errno] ?? `errno ${refused.errno}`;
          done(new XennetError('netlink', `nf_tables refused ${m.what}: ${name} (nothing of this transaction was applied)`));
        } else {
          done();
        }
      };
      const onMessage = (msgs: { type: number; seq: number; data: Buffer }[] | { type: number; seq: number; data: Buffer }): void => {
        for (const m of Array.isArray(msgs) ? msgs : [msgs]) {
          if (m.type !== NLMSG_ERROR) continue;
          // An error for the batch's first message is for the whole batch (the kernel could not even queue its answers).
          if (m.seq === first && m.data.length >= 4 && m.data.readInt32LE(0) !== 0) {
            done(new XennetError('netlink', `nf_tables refused a transaction of ${messages.length} messages: ${ERRNO_NAMES[-m.data.readInt32LE(0)] ?? `errno ${-m.data.readInt32LE(0)}`} (nothing of it was applied)`));
            return;
          }
          if (!pending.has(m.seq)) continue;
          pending.delete(m.seq);
          const errno = m.data.length >= 4 ? -m.data.readInt32LE(0) : 0;
          if (errno !== 0 && !refused) refused = { index: m.seq - first - 1, errno };
        }
        // A refused batch is acknowledged in part: the kernel stops at the message it refused
        // and answers for the ones before it; an error answers for the whole.
        if (pending.size === 0 || refused) finish();
      };
      const timer = setTimeout(() => done(new XennetError('netlink', `nf_tables did not answer a transaction of ${messages.length} messages within ${REPLY_TIMEOUT_MS / 1000} s`)), REPLY_TIMEOUT_MS);
      this.sock.on('message', onMessage);
      this.sock.ref(true);
      killPoint('nftables:before-send');
      this.sock.socket.send(datagram, {}, (error) => {
        if (error) done(new XennetError('netlink', `sending an nf_tables transaction: ${error.message}`, { cause: error }));
        // The kernel has taken (or refused) the whole transaction; its answer is not read yet.
        else if (!check) killPoint('nftables:sent');
      });
    });
  }
}

export { nfgenmsg };
