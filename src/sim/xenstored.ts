/**
 * An in-memory xenstored speaking the real wire protocol on a unix socket, for the simulated Xen
 * host (demo, benchmarks, tests). Xen's own clients (xenstore-read/-write/-ls/-rm, which honour
 * XENSTORED_PATH) and xennet's client both talk to it. It implements what the toolstack and the
 * hotplug scripts use: READ, WRITE, MKDIR, RM, DIRECTORY(_PART), GET/SET_PERMS, WATCH/UNWATCH
 * with events, transactions (optimistic: a commit after a conflicting change gets EAGAIN), and
 * GET_DOMAIN_PATH. Every connection is treated as dom0 (relative paths under /local/domain/0).
 */
import { EventEmitter } from 'node:events';
import { rmSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { createServer, type Server, type Socket } from 'node:net';
import { absolutePath, encodeMessage, isValidPath, joinStrings, MessageReader, PAYLOAD_MAX, splitStrings, XsType, type XsMessage } from '../xenstore/protocol.js';

interface Node {
  value: string;
  children: Map<string, Node>;
  /** Generation of the last change to this node (its value, or its list of children). */
  gen: number;
}

const newNode = (value = '', gen = 0): Node => ({ value, children: new Map(), gen });

function cloneTree(n: Node): Node {
  const c = newNode(n.value, n.gen);
  for (const [k, v] of n.children) c.children.set(k, cloneTree(v));
  return c;
}

class XsFailure extends Error {
  constructor(readonly errno: string) {
    super(errno);
  }
}

function segments(path: string): string[] {
  return path.split('/').filter((s) => s.length > 0);
}

function lookup(root: Node, path: string): Node | undefined {
  let n: Node | undefined = root;
  for (const s of segments(path)) {
    n = n.children.get(s);
    if (!n) return undefined;
  }
  return n;
}

/** The node at `path`, created (with its missing parents) at generation `gen`. */
function ensure(root: Node, path: string, gen = 0): Node {
  let n = root;
  for (const s of segments(path)) {
    let c = n.children.get(s);
    if (!c) {
      c = newNode('', gen);
      n.children.set(s, c);
      n.gen = gen;
    }
    n = c;
  }
  return n;
}

function remove(root: Node, path: string, gen = 0): boolean {
  const segs = segments(path);
  const last = segs.pop();
  if (last === undefined) return false;
  const parent = lookup(root, '/' + segs.join('/'));
  if (!parent?.children.delete(last)) return false;
  parent.gen = gen;
  return true;
}

type TxOp = { op: 'write'; path: string; value: string } | { op: 'mkdir'; path: string } | { op: 'rm'; path: string };

/**
 * A transaction: its own view of the tree, the generation of every node it touched as it first
 * saw it, and its changes to replay at commit. Like xenstored, a commit conflicts (EAGAIN) only
 * when a node it touched was changed by someone else meanwhile.
 */
interface Tx {
  tree: Node;
  seen: Map<string, number>;
  ops: TxOp[];
  changed: string[];
}

interface Conn {
  socket: Socket;
  txs: Map<number, Tx>;
}

export interface XenstoredOptions {
  socketPath: string;
}

/** Emits `write` (path, value, time in ms from performance.now()) for every committed write. */
export class InMemoryXenstored extends EventEmitter {
  private root: Node = newNode();
  private generation = 0;
  private nextTx = 1;
  private readonly watches: { conn: Conn; path: string; token: string }[] = [];
  private readonly conns = new Set<Conn>();
  private server: Server | undefined;
  private afterReply: (() => void)[] = [];

  constructor(readonly socketPath: string) {
    super();
    this.setMaxListeners(0); // benchmarks wait on many writes at once
    ensure(this.root, '/local/domain/0');
    ensure(this.root, '/tool');
  }

  async listen(): Promise<void> {
    rmSync(this.socketPath, { force: true });
    this.server = createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.socketPath, () => resolve());
    });
  }

  async close(): Promise<void> {
    for (const c of this.conns) c.socket.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    rmSync(this.socketPath, { force: true });
  }

  /** Direct access for the simulator (same semantics as a WRITE outside a transaction). */
  write(path: string, value: string): void {
    const gen = ++this.generation;
    const n = ensure(this.root, path, gen);
    n.value = value;
    n.gen = gen;
    this.fire([path]);
  }

  /** Several writes as one transaction (libxl adds a device's nodes so): watches fire after all. */
  writeAll(entries: readonly (readonly [string, string])[]): void {
    const gen = ++this.generation;
    for (const [path, value] of entries) {
      const n = ensure(this.root, path, gen);
      n.value = value;
      n.gen = gen;
    }
    this.fire(entries.map(([p]) => p));
    for (const [path, value] of entries) this.emit('write', path, value, performance.now());
  }

  /** Removes a node and its children (a toolstack removing a device); watches fire. */
  rm(path: string): void {
    const gen = ++this.generation;
    if (remove(this.root, path, gen)) this.fire([path]);
  }

  read(path: string): string | undefined {
    return lookup(this.root, path)?.value;
  }

  /** The whole tree as JSON-able data (to hand the store over to another process). */
  dump(): unknown {
    const walk = (n: Node): unknown => ({ v: n.value, c: Object.fromEntries([...n.children].map(([k, c]) => [k, walk(c)])) });
    return walk(this.root);
  }

  load(data: unknown): void {
    const build = (d: { v?: string; c?: Record<string, unknown> }): Node => {
      const n = newNode(typeof d.v === 'string' ? d.v : '');
      for (const [k, c] of Object.entries(d.c ?? {})) n.children.set(k, build(c as { v?: string; c?: Record<string, unknown> }));
      return n;
    };
    this.root = build(data as { v?: string; c?: Record<string, unknown> });
    this.generation++;
  }

  private accept(socket: Socket): void {
    const conn: Conn = { socket, txs: new Map() };
    this.conns.add(conn);
    const reader = new MessageReader();
    socket.on('data', (chunk: Buffer) => {
      let msgs: XsMessage[];
      try {
        msgs = reader.push(chunk);
      } catch {
        socket.destroy();
        return;
      }
      for (const m of msgs) this.handle(conn, m);
    });
    const drop = (): void => {
      this.conns.delete(conn);
      for (let i = this.watches.length - 1; i >= 0; i--) if (this.watches[i]!.conn === conn) this.watches.splice(i, 1);
    };
    socket.on('close', drop);
    socket.on('error', drop);
  }

  private reply(conn: Conn, m: XsMessage, type: number, payload: Buffer): void {
    if (!conn.socket.destroyed) conn.socket.write(encodeMessage({ type, reqId: m.reqId, txId: m.txId, payload }));
  }

  private fire(paths: string[]): void {
    for (const w of this.watches) {
      for (const p of paths) {
        const hit = p === w.path || p.startsWith(w.path + '/') || w.path.startsWith(p + '/');
        if (hit && !w.conn.socket.destroyed) {
          w.conn.socket.write(encodeMessage({ type: XsType.WATCH_EVENT, reqId: 0, txId: 0, payload: joinStrings([p, w.token]) }));
        }
      }
    }
  }

  private handle(conn: Conn, m: XsMessage): void {
    this.afterReply = [];
    try {
      const out = this.execute(conn, m);
      this.reply(conn, m, m.type, out);
      for (const f of this.afterReply) if (!conn.socket.destroyed) f();
    } catch (e) {
      this.reply(conn, m, XsType.ERROR, joinStrings([e instanceof XsFailure ? e.errno : 'EIO']));
    }
  }

  private pathArg(raw: string | undefined): string {
    if (raw === undefined || !isValidPath(raw)) throw new XsFailure('EINVAL');
    return raw.startsWith('@') ? raw : absolutePath(raw);
  }

  private execute(conn: Conn, m: XsMessage): Buffer {
    const ok = joinStrings(['OK']);
    const tx = m.txId === 0 ? undefined : conn.txs.get(m.txId);
    if (m.txId !== 0 && !tx) throw new XsFailure('ENOENT');
    const root = tx ? tx.tree : this.root;
    /** A transaction remembers the generation of each node it touches, as it first saw it. */
    const touch = (path: string): void => {
      if (tx && !tx.seen.has(path)) tx.seen.set(path, lookup(tx.tree, path)?.gen ?? -1);
    };
    const change = (path: string, op: TxOp): number => {
      if (tx) {
        tx.changed.push(path);
        tx.ops.push(op);
        return 0;
      }
      return ++this.generation;
    };
    const args = splitStrings(m.payload);
    switch (m.type) {
      case XsType.READ: {
        const path = this.pathArg(args[0]);
        touch(path);
        const n = lookup(root, path);
        if (!n) throw new XsFailure('ENOENT');
        return Buffer.from(n.value, 'utf8');
      }
      case XsType.WRITE: {
        const nul = m.payload.indexOf(0);
        if (nul < 0) throw new XsFailure('EINVAL');
        const path = this.pathArg(m.payload.subarray(0, nul).toString('utf8'));
        const value = m.payload.subarray(nul + 1).toString('utf8');
        touch(path);
        const gen = change(path, { op: 'write', path, value });
        const n = ensure(root, path, gen);
        n.value = value;
        n.gen = gen;
        if (!tx) {
          this.fire([path]);
          this.emit('write', path, value, performance.now());
        }
        return ok;
      }
      case XsType.MKDIR: {
        const path = this.pathArg(args[0]);
        touch(path);
        if (!lookup(root, path)) {
          ensure(root, path, change(path, { op: 'mkdir', path }));
          if (!tx) this.fire([path]);
        }
        return ok;
      }
      case XsType.RM: {
        const path = this.pathArg(args[0]);
        touch(path);
        if (!lookup(root, path)) throw new XsFailure('ENOENT');
        remove(root, path, change(path, { op: 'rm', path }));
        if (!tx) this.fire([path]);
        return ok;
      }
      case XsType.DIRECTORY: {
        const path = this.pathArg(args[0]);
        touch(path);
        const n = lookup(root, path);
        if (!n) throw new XsFailure('ENOENT');
        const all = n.children.size === 0 ? Buffer.alloc(0) : joinStrings([...n.children.keys()]);
        // Like xenstored: a listing that does not fit one message is refused; clients page it.
        if (all.length > PAYLOAD_MAX) throw new XsFailure('E2BIG');
        return all;
      }
      case XsType.DIRECTORY_PART: {
        // xenstored's reply: the node's generation, then as many whole child names (from the byte
        // offset into the full listing) as fit; an empty name after the last one ends the listing.
        const n = lookup(root, this.pathArg(args[0]));
        if (!n) throw new XsFailure('ENOENT');
        const offset = Number(args[1] ?? '0');
        const gen = joinStrings([String(n.gen)]);
        const parts: Buffer[] = [gen];
        let size = gen.length;
        let at = 0;
        let complete = true;
        for (const name of n.children.keys()) {
          const b = joinStrings([name]);
          if (at >= offset) {
            if (size + b.length + 1 > PAYLOAD_MAX) {
              complete = false;
              break;
            }
            parts.push(b);
            size += b.length;
          }
          at += b.length;
        }
        if (complete) parts.push(Buffer.from([0]));
        return Buffer.concat(parts);
      }
      case XsType.GET_PERMS: {
        if (!lookup(root, this.pathArg(args[0]))) throw new XsFailure('ENOENT');
        return joinStrings(['n0']);
      }
      case XsType.SET_PERMS: {
        if (!lookup(root, this.pathArg(args[0]))) throw new XsFailure('ENOENT');
        return ok;
      }
      case XsType.WATCH: {
        const path = this.pathArg(args[0]);
        const token = args[1] ?? '';
        this.watches.push({ conn, path, token });
        // Like xenstored: a new watch fires once, right after the reply.
        this.afterReply.push(() => conn.socket.write(encodeMessage({ type: XsType.WATCH_EVENT, reqId: 0, txId: 0, payload: joinStrings([path, token]) })));
        return ok;
      }
      case XsType.UNWATCH: {
        const path = this.pathArg(args[0]);
        const i = this.watches.findIndex((w) => w.conn === conn && w.path === path && w.token === (args[1] ?? ''));
        if (i < 0) throw new XsFailure('ENOENT');
        this.watches.splice(i, 1);
        return ok;
      }
      case XsType.RESET_WATCHES: {
        for (let i = this.watches.length - 1; i >= 0; i--) if (this.watches[i]!.conn === conn) this.watches.splice(i, 1);
        return ok;
      }
      case XsType.TRANSACTION_START: {
        if (m.txId !== 0) throw new XsFailure('EBUSY');
        const id = this.nextTx++;
        conn.txs.set(id, { tree: cloneTree(this.root), seen: new Map(), ops: [], changed: [] });
        return joinStrings([String(id)]);
      }
      case XsType.TRANSACTION_END: {
        if (!tx) throw new XsFailure('ENOENT');
        conn.txs.delete(m.txId);
        if (args[0] !== 'T') return ok;
        for (const [path, gen] of tx.seen) if ((lookup(this.root, path)?.gen ?? -1) !== gen) throw new XsFailure('EAGAIN');
        if (tx.ops.length > 0) {
          const gen = ++this.generation;
          for (const o of tx.ops) {
            if (o.op === 'write') {
              const n = ensure(this.root, o.path, gen);
              n.value = o.value;
              n.gen = gen;
            } else if (o.op === 'mkdir') {
              if (!lookup(this.root, o.path)) ensure(this.root, o.path, gen);
            } else {
              remove(this.root, o.path, gen);
            }
          }
          this.fire(tx.changed);
          const now = performance.now();
          for (const p of tx.changed) this.emit('write', p, lookup(this.root, p)?.value, now);
        }
        return ok;
      }
      case XsType.GET_DOMAIN_PATH:
        return joinStrings([`/local/domain/${args[0] ?? '0'}`]);
      case XsType.IS_DOMAIN_INTRODUCED:
        return joinStrings(['T']);
      default:
        throw new XsFailure('EINVAL');
    }
  }
}
