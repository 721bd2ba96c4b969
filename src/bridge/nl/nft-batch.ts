/**
 * Writes to nf_tables over nfnetlink as one batch: NFNL_MSG_BATCH_BEGIN, the messages, and
 * NFNL_MSG_BATCH_END in one datagram, which the kernel applies as one transaction (every message
 * or none). The kernel answers each message it refuses (so the error names it) and the last one,
 * whose answer says the whole batch was processed.
 *
 * The kernel takes a batch only whole, in one datagram, and a datagram only up to the socket's
 * send buffer, which a process without SO_SNDBUFFORCE (nft uses it; Node's netlink binding cannot)
 * gets up to twice net.core.wmem_max: `capacity()` says how large a batch may be.
 */
import netlink from 'netlink';
import { XennetError } from '../../sys/errors.js';
import { killPoint } from '../../sys/test-seams.js';

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
    // Only the last message asks for an answer: the kernel answers every refused one anyway, in
    // order, once the whole batch is processed, so the last one's answer comes after all others.
    // (Answers echo their message: an answer to each of 55,000 messages overran the socket.)
    const ack = i === messages.length - 1 ? NLM_F_ACK : 0;
    parts.push(header(16 + body.length, (NFNL_SUBSYS_NFTABLES << 8) | m.msg, NLM_F_REQUEST | ack | m.flags, firstSeq + 1 + i), body);
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
    const last = first + messages.length;
    return new Promise<void>((resolve, reject) => {
      let refused: { index: number; errno: number } | undefined;
      let settled = false;
      const done = (err?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.sock.off('message', onMessage);
        this.sock.ref(false);
        if (err) reject(err);
        else resolve();
      };
      const onMessage = (msgs: { type: number; seq: number; data: Buffer }[] | { type: number; seq: number; data: Buffer }): void => {
        for (const m of Array.isArray(msgs) ? msgs : [msgs]) {
          if (m.type !== NLMSG_ERROR || m.seq < first || m.seq > last) continue;
          const errno = m.data.length >= 4 ? -m.data.readInt32LE(0) : 0;
          // An error for the batch's first message is for the whole batch (the kernel could not even queue its answers).
          if (m.seq === first) {
            if (errno !== 0) done(new XennetError('netlink', `nf_tables refused a transaction of ${messages.length} messages: ${ERRNO_NAMES[errno] ?? `errno ${errno}`} (nothing of it was applied)`));
            continue;
          }
          if (errno !== 0 && (!refused || m.seq - first - 1 < refused.index)) refused = { index: m.seq - first - 1, errno };
          if (m.seq !== last) continue;
          if (refused) {
            const r = messages[refused.index]!;
            done(new XennetError('netlink', `nf_tables refused ${r.what}: ${ERRNO_NAMES[refused.errno] ?? `errno ${refused.errno}`} (nothing of this transaction was applied)`));
          } else {
            done();
          }
          return;
        }
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

