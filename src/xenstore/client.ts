/**
 * A native xenstore client. Finds the store the way libxenstore does: $XENSTORED_PATH, then
 * $XENSTORED_RUNDIR/socket, /var/run/xenstored/socket, then the /dev/xen/xenbus device. Requests
 * are matched to replies by request id; relative paths resolve under /local/domain/0.
 */
import { EventEmitter } from 'node:events';
import { closeSync, createReadStream, createWriteStream, existsSync, openSync, statSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { timeoutError } from '../sys/deadline.js';
import { XennetError } from '../sys/errors.js';
import { absolutePath, encodeMessage, isValidPath, joinStrings, MessageReader, splitStrings, XsType, type XsMessage } from './protocol.js';

export class XenstoreError extends XennetError {
  readonly errno: string;
  constructor(operation: string, errno: string) {
    super('exec', `xenstore ${operation}: ${errno}`);
    this.errno = errno;
  }
}

/** Where libxenstore would connect, in its order of preference. */
export function xenstoreCandidates(env: NodeJS.ProcessEnv = process.env): { kind: 'socket' | 'device'; path: string }[] {
  const explicit = env['XENSTORED_PATH'];
  if (explicit) return [{ kind: explicit.startsWith('/dev/') ? 'device' : 'socket', path: explicit }];
  const rundir = env['XENSTORED_RUNDIR'] || '/var/run/xenstored';
  return [
    { kind: 'socket', path: `${rundir}/socket` },
    { kind: 'device', path: '/dev/xen/xenbus' },
  ];
}

interface Pending {
  resolve: (m: XsMessage) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export interface XenstoreConnectOptions {
  /** How long one request may wait for its reply before the connection is given up (default 10 s). */
  requestTimeoutMs?: number;
  /** How long connecting may take (default 2 s). */
  connectTimeoutMs?: number;
  /**
   * How long to keep trying while no endpoint answers (default 0: one try). xenstored restarting
   * (an upgrade, a live update) is away for a moment: a hook waits that out instead of failing
   * the guest.
   */
  retryForMs?: number;
}

/** The hooks' wait for a xenstored that is away for a moment (restarting). */
export const HOOK_XENSTORE_RETRY_MS = 5000;

export interface Transaction {
  read(path: string): Promise<string | undefined>;
  write(path: string, value: string): Promise<void>;
  rm(path: string): Promise<void>;
  mkdir(path: string): Promise<void>;
  directory(path: string): Promise<string[]>;
}

export class XenstoreClient extends EventEmitter {
  private nextReqId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly reader = new MessageReader();
  /** Why the connection is unusable (closed by us, by xenstored, or given up); undefined while open. */
  private failure: Error | undefined;

  private constructor(
    private readonly input: Readable,
    private readonly output: Writable,
    private readonly onClose: () => void,
    readonly endpoint: string,
    private readonly requestTimeoutMs: number,
  ) {
    super();
    input.on('data', (chunk: Buffer) => {
      let msgs: XsMessage[];
      try {
        msgs = this.reader.push(chunk);
      } catch (e) {
        this.failAll(e instanceof Error ? e : new Error(String(e)));
        return;
      }
      for (const m of msgs) this.dispatch(m);
    });
    input.on('error', (e) => this.failAll(new XennetError('exec', `xenstore connection to ${endpoint} failed: ${e.message}`)));
    input.on('close', () => this.failAll(new XennetError('exec', `xenstored closed the connection (${endpoint})`, { hint: 'is xenstored running?' })));
    output.on('error', (e) => this.failAll(new XennetError('exec', `xenstore connection to ${endpoint} failed: ${e.message}`)));
  }

  /** Whether requests can still be sent. */
  get usable(): boolean {
    return this.failure === undefined;
  }

  static async connect(env: NodeJS.ProcessEnv = process.env, options: XenstoreConnectOptions = {}): Promise<XenstoreClient> {
    const until = Date.now() + (options.retryForMs ?? 0);
    for (;;) {
      try {
        return await XenstoreClient.connectOnce(env, options);
      } catch (e) {
        if (Date.now() + 100 > until) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  private static async connectOnce(env: NodeJS.ProcessEnv, options: XenstoreConnectOptions): Promise<XenstoreClient> {
    const requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    const connectTimeoutMs = options.connectTimeoutMs ?? 2000;
    const tried: string[] = [];
    for (const c of xenstoreCandidates(env)) {
      if (!existsSync(c.path)) {
        tried.push(`${c.path} (missing)`);
        continue;
      }
      if (c.kind === 'socket' || statSync(c.path).isSocket()) {
        const sock = await new Promise<Socket>((resolve, reject) => {
          const s = connect(c.path);
          const timer = setTimeout(() => {
            s.destroy();
            reject(new Error(`no connection within ${connectTimeoutMs} ms`));
          }, connectTimeoutMs);
          s.once('connect', () => {
            clearTimeout(timer);
            resolve(s);
          });
          s.once('error', (e) => {
            clearTimeout(timer);
            reject(e);
          });
        }).catch((e: Error) => {
          tried.push(`${c.path} (${e.message})`);
          return undefined;
        });
        if (sock) return new XenstoreClient(sock, sock, () => sock.destroy(), c.path, requestTimeoutMs);
      } else {
        const fd = openSync(c.path, 'r+');
        const input = createReadStream('', { fd, autoClose: false });
        const output = createWriteStream('', { fd, autoClose: false });
        return new XenstoreClient(input, output, () => {
          input.destroy();
          output.destroy();
          closeSync(fd);
        }, c.path, requestTimeoutMs);
      }
    }
    throw new XennetError('exec', `cannot reach xenstore: tried ${tried.join(', ')}`, { hint: 'is xenstored running? set XENSTORED_PATH to its socket' });
  }

  close(): void {
    if (this.failure) return;
    this.failAll(new XennetError('exec', `xenstore connection to ${this.endpoint} is closed`));
  }

  /**
   * The connection is done for: every pending request fails with `e` now, and every later one
   * at once. (A request left pending would never settle, and a hook waiting on it would exit
   * with nothing reported.)
   */
  private failAll(e: Error): void {
    if (!this.failure) {
      this.failure = e;
      this.onClose();
      this.emit('closed', e);
    }
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) {
      clearTimeout(p.timer);
      p.reject(e);
    }
  }

  private dispatch(m: XsMessage): void {
    if (m.type === XsType.WATCH_EVENT) {
      const [path, token] = splitStrings(m.payload);
      this.emit('watch', path, token);
      return;
    }
    const p = this.pending.get(m.reqId);
    if (!p) return;
    this.pending.delete(m.reqId);
    clearTimeout(p.timer);
    p.resolve(m);
  }

  private async request(type: number, payload: Buffer, txId: number, operation: string): Promise<Buffer> {
    if (this.failure) throw new XennetError('exec', `xenstore ${operation}: ${this.failure.message}`);
    const reqId = this.nextReqId++;
    const reply = await new Promise<XsMessage>((resolve, reject) => {
      // A xenstored that stopped answering is given up as a whole: replies after this are lost.
      // After a process starved of CPU wakes up, timers run before pending I/O is read: look at
      // the socket once more (setImmediate runs after the poll phase) before giving up.
      const timer = setTimeout(
        () =>
          setImmediate(() => {
            if (this.pending.has(reqId)) this.failAll(timeoutError(`xenstore ${operation} (${this.endpoint})`, this.requestTimeoutMs, 'is xenstored running and responsive?'));
          }),
        this.requestTimeoutMs,
      );
      this.pending.set(reqId, { resolve, reject, timer });
      this.output.write(encodeMessage({ type, reqId, txId, payload }));
    });
    if (reply.type === XsType.ERROR) throw new XenstoreError(operation, splitStrings(reply.payload)[0] ?? 'EIO');
    return reply.payload;
  }

  private path(path: string): string {
    if (!isValidPath(path)) throw new XennetError('usage', `not a valid xenstore path: ${JSON.stringify(path)}`);
    return absolutePath(path);
  }

  /** The node's value, or undefined when it does not exist. */
  async read(path: string, txId = 0): Promise<string | undefined> {
    const p = this.path(path);
    try {
      return (await this.request(XsType.READ, joinStrings([p]), txId, `read ${p}`)).toString('utf8');
    } catch (e) {
      if (e instanceof XenstoreError && e.errno === 'ENOENT') return undefined;
      throw e;
    }
  }

  async write(path: string, value: string, txId = 0): Promise<void> {
    const p = this.path(path);
    await this.request(XsType.WRITE, Buffer.concat([joinStrings([p]), Buffer.from(value, 'utf8')]), txId, `write ${p}`);
  }

  async mkdir(path: string, txId = 0): Promise<void> {
    const p = this.path(path);
    await this.request(XsType.MKDIR, joinStrings([p]), txId, `mkdir ${p}`);
  }

  /** Removes a node and its children; a missing node is not an error. */
  async rm(path: string, txId = 0): Promise<void> {
    const p = this.path(path);
    try {
      await this.request(XsType.RM, joinStrings([p]), txId, `rm ${p}`);
    } catch (e) {
      if (!(e instanceof XenstoreError && e.errno === 'ENOENT')) throw e;
    }
  }

  async directory(path: string, txId = 0): Promise<string[]> {
    const p = this.path(path);
    try {
      return splitStrings(await this.request(XsType.DIRECTORY, joinStrings([p]), txId, `directory ${p}`));
    } catch (e) {
      if (e instanceof XenstoreError && e.errno === 'ENOENT') return [];
      // A listing larger than one message (a thousand guests' domain ids): page it, as
      // libxenstore does, outside transactions (xenstored allows XS_DIRECTORY_PART only there).
      if (e instanceof XenstoreError && e.errno === 'E2BIG' && txId === 0) return this.directoryInParts(p);
      throw e;
    }
  }

  /** XS_DIRECTORY_PART: `<generation>\0name\0...`, an empty name after the last; restarted when the node changes. */
  private async directoryInParts(p: string): Promise<string[]> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const names: string[] = [];
      let generation: string | undefined;
      let offset = 0;
      for (;;) {
        let reply: Buffer;
        try {
          reply = await this.request(XsType.DIRECTORY_PART, joinStrings([p, String(offset)]), 0, `directory ${p}`);
        } catch (e) {
          if (e instanceof XenstoreError && e.errno === 'ENOENT') return [];
          throw e;
        }
        const fields = reply.toString('utf8').split('\0');
        const gen = fields[0]!;
        if (generation !== undefined && gen !== generation) break; // changed meanwhile: start over
        generation = gen;
        const rest = fields.slice(1);
        // "gen\0a\0b\0" splits to [gen, a, b, ""]; the end adds one more empty field.
        const ended = rest.length >= 2 && rest[rest.length - 1] === '' && rest[rest.length - 2] === '';
        const got = rest.filter((n) => n !== '');
        names.push(...got);
        if (ended || got.length === 0) return names;
        offset += got.reduce((n, s) => n + Buffer.byteLength(s) + 1, 0);
      }
    }
    throw new XennetError('exec', `directory ${p}: the listing kept changing while it was read in parts`);
  }

  async watch(path: string, token: string): Promise<void> {
    const p = path.startsWith('@') ? path : this.path(path);
    await this.request(XsType.WATCH, joinStrings([p, token]), 0, `watch ${p}`);
  }

  async unwatch(path: string, token: string): Promise<void> {
    const p = path.startsWith('@') ? path : this.path(path);
    await this.request(XsType.UNWATCH, joinStrings([p, token]), 0, `unwatch ${p}`);
  }

  /**
   * Runs `fn` in a transaction and commits it; retries from the start when the store reports a
   * conflict (EAGAIN), like libxenstore's callers do.
   */
  async transaction<T>(fn: (tx: Transaction) => Promise<T>, attempts = 20): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const txId = Number(splitStrings(await this.request(XsType.TRANSACTION_START, joinStrings(['']), 0, 'transaction start'))[0]);
      const tx: Transaction = {
        read: (p) => this.read(p, txId),
        write: (p, v) => this.write(p, v, txId),
        rm: (p) => this.rm(p, txId),
        mkdir: (p) => this.mkdir(p, txId),
        directory: (p) => this.directory(p, txId),
      };
      let result: T;
      try {
        result = await fn(tx);
      } catch (e) {
        await this.request(XsType.TRANSACTION_END, joinStrings(['F']), txId, 'transaction abort').catch(() => undefined);
        throw e;
      }
      try {
        await this.request(XsType.TRANSACTION_END, joinStrings(['T']), txId, 'transaction commit');
        return result;
      } catch (e) {
        if (e instanceof XenstoreError && e.errno === 'EAGAIN' && attempt < attempts) {
          // Back off a little (randomised) so that writers racing for the same nodes spread out.
          await new Promise((r) => setTimeout(r, Math.random() * Math.min(50, 2 * attempt)));
          continue;
        }
        throw e;
      }
    }
  }
}
