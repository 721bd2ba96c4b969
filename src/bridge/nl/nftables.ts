/**
 * nf_tables objects read over nfnetlink, as the kernel holds them: one dump per object kind (the
 * chains of a family, the rules of a table, the sets of a table, the elements of a set), decoded
 * into plain typed objects. No `nft` process and no text: reading 1000 guests' rules this way is
 * one request and its replies, where `nft list table` asks once per chain.
 *
 * Only what xennet compares is decoded: names, hooks and policies of chains; a rule's userdata
 * (where xennet writes the content hash of what it wrote) and its counter; a set's keys, data,
 * timeouts and counters. The expressions of a rule are not decoded: the hash says what they are.
 */
import netlink from 'netlink';
import { XennetError } from '../../sys/errors.js';
import { nfnlAttribute, nfnlAttributeList, userdataRecord, type NfnlAttribute } from './nfnl.js';
import { NFPROTO, VERDICT, nfgenmsg, type NftFamilyName } from './nft-numbers.js';

const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_NFTABLES = 10;
const NLM_F_DUMP = 0x300;
const NLM_F_DUMP_INTR = 0x10;
const REQUEST_TIMEOUT_MS = 5000;

const NFT_MSG_GETTABLE = 1;
const NFT_MSG_GETCHAIN = 4;
const NFT_MSG_GETRULE = 7;
const NFT_MSG_GETSET = 10;
const NFT_MSG_GETSETELEM = 13;
const NFT_MSG_GETGEN = 16;

export { NFPROTO, VERDICT, nfgenmsg, type NftFamilyName };

export interface NftChainObject {
  /** The family's number (NFPROTO_*). */
  family: number;
  table: string;
  name: string;
  handle: bigint;
  /** A base chain's hook (its number in the family's hooks) and priority. */
  hook?: { num: number; priority: number };
  /** A base chain's policy: accept (1) or drop (0). */
  policy?: number;
  type?: string;
}

export interface NftRuleObject {
  table: string;
  chain: string;
  handle: bigint;
  /** How many expressions it has. */
  expressions: number;
  /** Its expressions as the kernel dumps them (NFTA_RULE_EXPRESSIONS' contents). */
  exprs?: Buffer;
  /** Its first counter expression's values, when it has one. */
  counter?: { packets: number; bytes: number };
  /** The comment in its userdata (what `nft` prints as `comment "..."`). */
  comment?: string;
  /** Its userdata as the kernel holds it (NFTA_RULE_USERDATA). */
  userdata?: Buffer;
  /** What an xtables rule tells of its protocol (NFTA_RULE_COMPAT's contents: iptables-nft's matches need it). */
  compat?: Buffer;
}

/** A set as the kernel holds it: what tells two declarations apart (the kernel's own numbers: handle, use, backend, are left out). */
export interface NftSetObject {
  name: string;
  flags: number;
  keyType: number;
  keyLen: number;
  dataType?: number;
  dataLen?: number;
  size?: number;
  /** Its elements' default timeout, in ms. */
  timeout?: number;
  /** Its userdata (for nft to print it with), in hex. */
  userdata: string;
  /** The names of the expressions each element gets (`counter`). */
  exprs: string[];
}

export interface NftElementObject {
  key: Buffer;
  keyEnd?: Buffer;
  flags: number;
  /** A map's data: a verdict (code and, for jump/goto, the chain) or a value. */
  verdict?: { code: number; chain?: string };
  value?: Buffer;
  /** The element's timeout and the time left, in ms. */
  timeout?: number;
  expiration?: number;
  counter?: { packets: number; bytes: number };
  comment?: string;
}

const attributes = nfnlAttributeList;

const first = (attrs: readonly NfnlAttribute[], type: number): Buffer | undefined => attrs.find((a) => a.type === type)?.value;
const str = (b: Buffer | undefined): string | undefined => (b === undefined ? undefined : b.toString('utf8').replace(/\0.*$/s, ''));
const u32 = (b: Buffer | undefined): number | undefined => (b && b.length >= 4 ? b.readUInt32BE(0) : undefined);
const i32 = (b: Buffer | undefined): number | undefined => (b && b.length >= 4 ? b.readInt32BE(0) : undefined);
const u64 = (b: Buffer | undefined): bigint | undefined => (b && b.length >= 8 ? b.readBigUInt64BE(0) : undefined);
const num64 = (b: Buffer | undefined): number | undefined => {
  const v = u64(b);
  return v === undefined ? undefined : Number(v);
};

export const encodeString = (type: number, s: string): Buffer => nfnlAttribute(type, Buffer.from(`${s}\0`, 'utf8'));


/**
 * The comment of nftables userdata (pure): type-length-value records of one byte each; type 0 is
 * the comment, NUL-terminated (libnftnl's NFTNL_UDATA_RULE_COMMENT, _SET_ELEM_COMMENT).
 */
export function userdataComment(b: Buffer | undefined): string | undefined {
  return userdataRecord(b, 0)?.toString('utf8').replace(/\0.*$/s, '');
}

/** A counter expression's data (NFTA_COUNTER_BYTES 1, _PACKETS 2). */
function counterOf(data: Buffer): { packets: number; bytes: number } {
  const a = attributes(data);
  return { packets: num64(first(a, 2)) ?? 0, bytes: num64(first(a, 1)) ?? 0 };
}

/** An expression: NFTA_EXPR_NAME 1, NFTA_EXPR_DATA 2. */
function expressionOf(b: Buffer): { name: string; data: Buffer | undefined } {
  const a = attributes(b);
  return { name: str(first(a, 1)) ?? '', data: first(a, 2) };
}

export function decodeSet(body: Buffer): NftSetObject {
  const a = attributes(body, 4);
  const desc = first(a, 9);
  const size = desc ? u32(first(attributes(desc), 1)) : undefined;
  const one = first(a, 17);
  const exprs = [...(one ? [one] : []), ...attributes(first(a, 18) ?? Buffer.alloc(0)).map((x) => x.value)].map((x) => expressionOf(x).name);
  const dataType = u32(first(a, 6));
  const dataLen = u32(first(a, 7));
  const timeout = num64(first(a, 11));
  return {
    name: str(first(a, 2)) ?? '',
    flags: u32(first(a, 3)) ?? 0,
    keyType: u32(first(a, 4)) ?? 0,
    keyLen: u32(first(a, 5)) ?? 0,
    ...(dataType !== undefined ? { dataType } : {}),
    ...(dataLen !== undefined ? { dataLen } : {}),
    ...(size !== undefined ? { size } : {}),
    ...(timeout !== undefined ? { timeout } : {}),
    userdata: (first(a, 13) ?? Buffer.alloc(0)).toString('hex'),
    exprs,
  };
}

export function decodeChain(body: Buffer): NftChainObject {
  const a = attributes(body, 4);
  const hookAttr = first(a, 4);
  const hook = hookAttr ? attributes(hookAttr) : undefined;
  const policy = u32(first(a, 5));
  const type = str(first(a, 7));
  return {
    family: body.length > 0 ? body.readUInt8(0) : 0,
    table: str(first(a, 1)) ?? '',
    name: str(first(a, 3)) ?? '',
    handle: u64(first(a, 2)) ?? 0n,
    ...(hook ? { hook: { num: u32(first(hook, 1)) ?? 0, priority: i32(first(hook, 2)) ?? 0 } } : {}),
    ...(policy !== undefined ? { policy } : {}),
    ...(type !== undefined ? { type } : {}),
  };
}

/**
 * Calls `fn` with each attribute's type and value bounds in `buf[start, end)`, allocating nothing
 * (a 1000-guest table has 32,000 rules and 200,000 expressions: objects per attribute cost more
 * than the kernel's dump).
 */
function walk(buf: Buffer, start: number, end: number, fn: (type: number, from: number, to: number) => void): void {
  for (let off = start; off + 4 <= end; ) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > end) return;
    fn(buf.readUInt16LE(off + 2) & 0x3fff, off + 4, off + len);
    off += (len + 3) & ~3;
  }
}

const COUNTER = Buffer.from('counter\0');
const cstring = (buf: Buffer, from: number, to: number): string => {
  const nul = buf.indexOf(0, from);
  return buf.toString('utf8', from, nul >= 0 && nul < to ? nul : to);
};

export function decodeRule(body: Buffer): NftRuleObject {
  let table = '';
  let chain = '';
  let handle = 0n;
  let expressions = 0;
  let exprs: Buffer = Buffer.alloc(0);
  let counter: NftRuleObject['counter'];
  let comment: string | undefined;
  let userdata: Buffer | undefined;
  let compat: Buffer | undefined;
  walk(body, 4, body.length, (type, from, to) => {
    if (type === 1) table = cstring(body, from, to);
    else if (type === 2) chain = cstring(body, from, to);
    else if (type === 3 && to - from >= 8) handle = body.readBigUInt64BE(from);
    else if (type === 5) compat = body.subarray(from, to);
    else if (type === 7) {
      userdata = body.subarray(from, to);
      comment = userdataComment(userdata);
    }
    else if (type === 4) {
      exprs = body.subarray(from, to);
      // NFTA_LIST_ELEM: NFTA_EXPR_NAME 1, NFTA_EXPR_DATA 2; only a counter's data is read.
      walk(body, from, to, (_elem, ef, et) => {
        expressions++;
        let isCounter = false;
        walk(body, ef, et, (t, f, e) => {
          if (t === 1) isCounter = e - f >= COUNTER.length && body.compare(COUNTER, 0, COUNTER.length, f, f + COUNTER.length) === 0;
          else if (t === 2 && isCounter && counter === undefined) {
            const c = { packets: 0, bytes: 0 };
            walk(body, f, e, (ct, cf, ce) => {
              if (ce - cf < 8) return;
              if (ct === 1) c.bytes = Number(body.readBigUInt64BE(cf));
              else if (ct === 2) c.packets = Number(body.readBigUInt64BE(cf));
            });
            counter = c;
          }
        });
      });
    }
  });
  return { table, chain, handle, expressions, exprs, ...(counter ? { counter } : {}), ...(comment !== undefined ? { comment } : {}), ...(userdata ? { userdata } : {}), ...(compat ? { compat } : {}) };
}

/** NFTA_DATA_VALUE 1 or NFTA_DATA_VERDICT 2 (NFTA_VERDICT_CODE 1, NFTA_VERDICT_CHAIN 2). */
function dataOf(b: Buffer): { value?: Buffer; verdict?: { code: number; chain?: string } } {
  const a = attributes(b);
  const value = first(a, 1);
  if (value) return { value: Buffer.from(value) };
  const v = first(a, 2);
  if (!v) return {};
  const va = attributes(v);
  const chain = str(first(va, 2));
  return { verdict: { code: i32(first(va, 1)) ?? 0, ...(chain !== undefined ? { chain } : {}) } };
}

/** The elements of one NFT_MSG_NEWSETELEM message (NFTA_SET_ELEM_LIST_ELEMENTS 3). */
export function decodeElements(body: Buffer): NftElementObject[] {
  const out: NftElementObject[] = [];
  for (const e of attributes(first(attributes(body, 4), 3) ?? Buffer.alloc(0))) {
    const a = attributes(e.value);
    const key = first(a, 1);
    // NFTA_SET_ELEM_KEY_END 10 and _EXPRESSIONS 11 (9 is _OBJREF).
    const keyEnd = first(a, 10);
    const data = first(a, 2);
    const timeout = num64(first(a, 4));
    const expiration = num64(first(a, 5));
    const comment = userdataComment(first(a, 6));
    let counter: NftElementObject['counter'];
    const one = first(a, 7);
    const exprs = [...(one ? [one] : []), ...attributes(first(a, 11) ?? Buffer.alloc(0)).map((x) => x.value)];
    for (const x of exprs.map(expressionOf)) if (x.name === 'counter' && x.data && !counter) counter = counterOf(x.data);
    out.push({
      key: Buffer.from(key ? (first(attributes(key), 1) ?? Buffer.alloc(0)) : Buffer.alloc(0)),
      ...(keyEnd ? { keyEnd: Buffer.from(first(attributes(keyEnd), 1) ?? Buffer.alloc(0)) } : {}),
      flags: u32(first(a, 3)) ?? 0,
      ...(data ? dataOf(data) : {}),
      ...(timeout !== undefined ? { timeout } : {}),
      ...(expiration !== undefined ? { expiration } : {}),
      ...(counter ? { counter } : {}),
      ...(comment !== undefined ? { comment } : {}),
    });
  }
  return out;
}

const NOENT = /ENOENT/;
const NFTA_TABLE_FLAGS = 2;
/** NFT_TABLE_F_DORMANT: a table whose base chains are not hooked; none of its rules run. */
export const TABLE_DORMANT = 1;

/**
 * A reader of nf_tables over one nfnetlink socket. Each dump is retried while the kernel flags
 * it interrupted (the ruleset changed under it); `absent` is what a dump of a table that does not
 * exist returns.
 */
export class NftReader {
  // No peeking: the kernel sizes a dump's messages by the largest buffer read with (up to 32 KiB),
  // and a peek reads with one byte: 8 KiB messages made a 1000-guest rule dump three times slower.
  private readonly sock = netlink.createNetlink(NETLINK_NETFILTER, { recvBufferSize: 8 * 1024 * 1024, sendBufferSize: 65536, messagePeeking: false, msgBufferSize: 65536 });

  /** One request at a time: the socket groups a dump's parts as they come, one dump's only. */
  private busy: Promise<unknown> = Promise.resolve();

  constructor() {
    // A receive error (ENOBUFS) fails the request in flight; unheard, the event would end the process.
    this.sock.on('error', () => undefined);
  }

  close(): void {
    this.sock.close();
  }

  private serial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.busy.then(task, task);
    this.busy = run.catch(() => undefined);
    return run;
  }

  private dump(msg: number, family: number, attrs: Buffer[], what: string): Promise<Buffer[] | undefined> {
    return this.serial(() => this.dumpNow(msg, family, attrs, what));
  }

  private async dumpNow(msg: number, family: number, attrs: Buffer[], what: string): Promise<Buffer[] | undefined> {
    const type = (NFNL_SUBSYS_NFTABLES << 8) | msg;
    for (let attempt = 0; attempt < 5; attempt++) {
      let msgs: { type: number; flags: number; data: Buffer }[];
      try {
        [msgs] = await this.sock.request(type, [nfgenmsg(family), ...attrs], { timeout: REQUEST_TIMEOUT_MS, flags: NLM_F_DUMP });
      } catch (e) {
        const text = e instanceof Error ? e.message : String(e);
        if (NOENT.test(text)) return undefined;
        throw new XennetError('netlink', `reading nf_tables ${what}: ${text}`, { cause: e });
      }
      if (msgs.some((m) => (m.flags & NLM_F_DUMP_INTR) !== 0)) continue;
      // The replies are the NEW message of the kind asked for (NFT_MSG_GETRULE -> NFT_MSG_NEWRULE).
      return msgs.filter((m) => m.type === type - 1).map((m) => m.data);
    }
    throw new XennetError('netlink', `reading nf_tables ${what}: the ruleset kept changing during the dump`);
  }

  /** Whether a table exists. */
  async tableExists(family: NftFamilyName, table: string): Promise<boolean> {
    return (await this.tableFlags(family, table)) !== undefined;
  }

  /** A table's flags (NFT_TABLE_F_*: 1 is dormant), or undefined when it does not exist. */
  tableFlags(family: NftFamilyName, table: string): Promise<number | undefined> {
    return this.serial(() => this.tableFlagsNow(family, table));
  }

  private async tableFlagsNow(family: NftFamilyName, table: string): Promise<number | undefined> {
    const type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE;
    try {
      const [msgs] = await this.sock.request(type, [nfgenmsg(NFPROTO[family]), encodeString(1, table)], { timeout: REQUEST_TIMEOUT_MS });
      const reply = msgs.find((m) => m.type === type - 1);
      if (!reply) return undefined;
      let flags = 0;
      walk(reply.data, 4, reply.data.length, (t, from, to) => {
        if (t === NFTA_TABLE_FLAGS && to - from >= 4) flags = reply.data.readUInt32BE(from);
      });
      return flags;
    } catch (e) {
      const text = e instanceof Error ? e.message : String(e);
      if (NOENT.test(text)) return undefined;
      throw new XennetError('netlink', `reading nf_tables table ${family} ${table}: ${text}`, { cause: e });
    }
  }

  /** Every chain of a family, or of every family (the kernel does not filter chain dumps by table). */
  async chains(family: NftFamilyName | 'all'): Promise<NftChainObject[]> {
    return ((await this.dump(NFT_MSG_GETCHAIN, family === 'all' ? 0 : NFPROTO[family], [], `chains of ${family}`)) ?? []).map(decodeChain);
  }

  /** The rules of one table (of one chain of it), in each chain's order; undefined when the table (the chain) does not exist. */
  async rules(family: NftFamilyName, table: string, chain?: string): Promise<NftRuleObject[] | undefined> {
    const attrs = [encodeString(1, table), ...(chain === undefined ? [] : [encodeString(2, chain)])];
    return (await this.dump(NFT_MSG_GETRULE, NFPROTO[family], attrs, `rules of ${family} ${table}${chain === undefined ? '' : ` ${chain}`}`))?.map(decodeRule);
  }

  /** The sets of one table; undefined when the table does not exist. */
  async sets(family: NftFamilyName, table: string): Promise<NftSetObject[] | undefined> {
    return (await this.dump(NFT_MSG_GETSET, NFPROTO[family], [encodeString(1, table)], `sets of ${family} ${table}`))?.map(decodeSet);
  }

  /** The elements of one set; undefined when it does not exist. */
  async elements(family: NftFamilyName, table: string, set: string): Promise<NftElementObject[] | undefined> {
    return (await this.dump(NFT_MSG_GETSETELEM, NFPROTO[family], [encodeString(1, table), encodeString(2, set)], `elements of ${family} ${table} ${set}`))?.flatMap(decodeElements);
  }

  /** The ruleset's generation: it changes with every commit to nf_tables. */
  generation(): Promise<number> {
    return this.serial(() => this.generationNow());
  }

  private async generationNow(): Promise<number> {
    const type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN;
    const [msgs] = await this.sock.request(type, [nfgenmsg(0)], { timeout: REQUEST_TIMEOUT_MS });
    const m = msgs.find((x) => x.type === type - 1);
    const id = m ? u32(first(attributes(m.data, 4), 1)) : undefined;
    if (id === undefined) throw new XennetError('netlink', 'reading nf_tables generation: no answer');
    return id;
  }
}
