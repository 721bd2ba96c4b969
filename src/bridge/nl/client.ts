/**
 * The typed rtnetlink client: the only module of xennet that talks to the kernel's network
 * configuration. It reads links, addresses and routes into the plain model of ../model.ts and
 * performs single, named changes. Every failure is a XennetError that names the operation, the
 * object and the kernel's errno name.
 */
import netlink from 'netlink';
import ipaddr from 'ipaddr.js';
import { XennetError } from '../../sys/errors.js';
import { readStackSettings, writeInterfaceSysctl, type StackSettings } from '../../sys/sysctl.js';
import type { AddressState, Family, HostState, LinkState, NeighState, RouteState } from '../model.js';
import { devconfValue, getLinkByIndexRequest, getLinkByNameRequest, linkDumpRequest, parseLinkMessage, type LinkMessage } from './link-message.js';
import { bridgeLinkInfo, bridgeNetfilterLinkInfo, bridgeNoLinkLocalLearnLinkInfo, decodeLinkInfo, decodeU32, encodeU32, vethLinkInfo, type BridgeCreateOptions } from './linkinfo.js';

const { createRtNetlink, rt, FlagsGet, FlagsNew } = netlink;
type RtSocket = ReturnType<typeof createRtNetlink>;
type RtMessage = ReturnType<typeof rt.parseMessage>;
type AddressMessage = Extract<RtMessage, { kind: 'address' }>;
type RouteMessage = Extract<RtMessage, { kind: 'route' }>;
type RouteAttrs = NonNullable<Parameters<RtSocket['newRoute']>[1]>;
type AddressAttrs = NonNullable<Parameters<RtSocket['newAddress']>[1]>;

const AF_INET = 2;
const AF_INET6 = 10;
const NLM_F_DUMP_INTR = 0x10;
const CREATE_EXCL = FlagsNew.CREATE | FlagsNew.EXCL;
/** ndm_flags: a proxy entry (include/uapi/linux/neighbour.h). */
const NTF_PROXY = 0x08;
/** Every request is bounded: a kernel reply that never comes fails the operation, never hangs it. */
const REQUEST_TIMEOUT_MS = 5000;
const REQ = { timeout: REQUEST_TIMEOUT_MS };
/** A link's name is at most IFNAMSIZ - 1 bytes. */
const MAX_IFNAME_BYTES = 15;

/**
 * A link's IP-stack settings: the value at a position of its IPv4 settings (IPV4_DEVCONF_x is at
 * x - 1) or its IPv6 settings (DEVCONF_x at x); undefined when the link has no such stack.
 */
export interface LinkSettings {
  ipv4(position: number): number | undefined;
  ipv6(position: number): number | undefined;
}

export class NetlinkError extends XennetError {
  readonly errno: string;
  constructor(operation: string, errno: string, cause: unknown) {
    super('netlink', `${operation}: kernel said ${errno}`, { cause });
    this.errno = errno;
  }
}

/** The errno name out of the package's error text (`Request rejected: EEXIST`). */
export function errnoName(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  const m = /\b(E[A-Z0-9]{2,})\b/.exec(text);
  return m?.[1] ?? text;
}

const familyNumber = (f: Family): number => (f === 'inet' ? AF_INET : AF_INET6);
const familyName = (n: number | undefined): Family | undefined => (n === AF_INET ? 'inet' : n === AF_INET6 ? 'inet6' : undefined);

/** Hex pairs joined by colons (`[...b].map(...)` was a tenth of a 1000-link dump's parse). */
export function macToString(b: Buffer | undefined): string {
  if (!b || b.length === 0) return '';
  const hex = b.toString('hex');
  let out = hex.slice(0, 2);
  for (let i = 2; i < hex.length; i += 2) out += `:${hex.slice(i, i + 2)}`;
  return out;
}

export function macToBuffer(mac: string): Buffer {
  if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(mac)) throw new XennetError('internal', `not a MAC address: ${mac}`);
  return Buffer.from(mac.split(':').map((x) => Number.parseInt(x, 16)));
}

function ipToString(b: Buffer | undefined): string | undefined {
  if (!b || (b.length !== 4 && b.length !== 16)) return undefined;
  return ipaddr.fromByteArray([...b]).toString();
}

function ipToBuffer(ip: string): Buffer {
  return Buffer.from(ipaddr.parse(ip).toByteArray());
}

function enumNumber<T extends Record<string, string | number>>(e: T, v: number | string | undefined): number {
  if (v === undefined) return 0;
  if (typeof v === 'number') return v;
  const n = e[v];
  return typeof n === 'number' ? n : 0;
}

function flagNames(flags: object | undefined): string[] {
  if (!flags) return [];
  return Object.entries(flags)
    .filter(([k, v]) => k !== '__unknown' && v === true)
    .map(([k]) => k)
    .sort();
}

/** Route metrics that are plain u32 values (RTA_METRICS members other than cc_algo). */
const numericMetrics = ['lock', 'mtu', 'window', 'rtt', 'rttvar', 'ssthresh', 'cwnd', 'advmss', 'reordering', 'hoplimit', 'initcwnd', 'features', 'rtoMin', 'initrwnd', 'quickack', 'fastopenNoCookie'] as const;
type NumericMetric = (typeof numericMetrics)[number];

/** Kinds of link stacked on a lower device that they keep from being a bridge port (the kernel: EBUSY). */
const StackedKinds = new Set(['macvlan', 'macvtap', 'ipvlan', 'ipvtap']);

function toLinkState(m: LinkMessage, nameOf: Map<number, string>): LinkState {
  const info = decodeLinkInfo(m.linkinfo);
  const link: LinkState = {
    index: m.index,
    name: m.ifname ?? '',
    kind: info.kind,
    master: m.master ? (nameOf.get(m.master) ?? `if${m.master}`) : null,
    mac: macToString(m.address),
    mtu: m.mtu ?? 0,
    up: m.up,
    arp: !m.noarp,
    multicast: m.multicast,
    // IFLA_LINK with IFLA_LINK_NETNSID is an index in another namespace: no link of this one.
    peerIndex: info.kind === 'veth' && m.linkNetnsid === undefined ? (m.link ?? null) : null,
  };
  if (info.kind !== null && StackedKinds.has(info.kind) && m.link !== undefined && m.link !== 0 && m.linkNetnsid === undefined) link.lower = m.link;
  if (info.bridge) link.bridge = info.bridge;
  if (m.ifalias) link.alias = m.ifalias;
  return link;
}

/** A link's IP-stack settings as the kernel reports them with the link (see LinkSettings). */
function settingsOf(m: LinkMessage): LinkSettings {
  return { ipv4: (position) => devconfValue(m.inetConf, position), ipv6: (position) => devconfValue(m.inet6Conf, position) };
}

/** The ifindex of each struct rtnexthop (len u16, flags u8, hops u8, ifindex s32, attrs) in RTA_MULTIPATH. */
function multipathIfindexes(buf: Buffer): number[] {
  const out: number[] = [];
  for (let off = 0; off + 8 <= buf.length; ) {
    const len = buf.readUInt16LE(off);
    out.push(buf.readInt32LE(off + 4));
    if (len < 8) break;
    off += (len + 3) & ~3;
  }
  return out;
}

export class NetlinkClient {
  private readonly sock: RtSocket;

  constructor() {
    // Read into a 64 KiB buffer, not peeked at: the kernel sizes a dump's messages by the largest
    // buffer its reader used (up to 32 KiB), and the package's peek uses one byte, which kept them at
    // its 8 KiB floor. A 1000-link dump: about 300 messages read in two calls each, 19 ms; read so,
    // about 16 ms (the nftables readers do the same). A message larger than the buffer (a link
    // with hundreds of alternative names is up to 68 KiB) arrives cut: see request().
    this.sock = createRtNetlink({ recvBufferSize: 1024 * 1024, sendBufferSize: 65536, messagePeeking: false, msgBufferSize: 65536 });
    this.sock.socket.on('truncatedMessage', () => this.truncated++);
  }

  /** Messages the 64 KiB buffer cut (the package passes them over: a dump would miss them, a read would find nothing). */
  private truncated = 0;
  /** A socket that peeks at each message's size before reading it: for a request whose answer did not fit. */
  private peeking: RtSocket | undefined;

  close(): void {
    this.sock.socket.close();
    this.peeking?.socket.close();
  }

  /**
   * One request on the buffered socket; asked again on a peeking one when a message of its answer
   * was larger than the buffer. Requests run one at a time (serial), so a cut message is this one's.
   */
  private async request(type: number, body: Buffer, options: { timeout: number; flags?: number }): Promise<{ type: number; flags: number; data: Buffer }[]> {
    const before = this.truncated;
    const [msgs] = await this.sock.socket.request(type, body, options);
    if (this.truncated === before) return msgs;
    this.peeking ??= createRtNetlink();
    return (await this.peeking.socket.request(type, body, options))[0];
  }

  /**
   * Requests one at a time. The socket is shared by concurrent callers (the daemon's hooks), and
   * a reply that arrives between the parts of a dump would cut the dump short.
   */
  private queue: Promise<unknown> = Promise.resolve();

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** One dump request, retried while the kernel flags it interrupted (NLM_F_DUMP_INTR). */
  private async dump(type: number, header: Buffer, what: string): Promise<RtMessage[]> {
    return (await this.serial(() => this.dumpNow(type, header, what))).map((m) => rt.parseMessage(m.type, m.data));
  }

  private async dumpNow(type: number, header: Buffer, what: string): Promise<{ type: number; data: Buffer }[]> {
    for (let attempt = 0; attempt < 5; attempt++) {
      let msgs;
      try {
        msgs = await this.request(type, header, { ...REQ, flags: FlagsGet.DUMP });
      } catch (e) {
        throw new NetlinkError(`list ${what}`, errnoName(e), e);
      }
      if (msgs.some((m) => (m.flags & NLM_F_DUMP_INTR) !== 0)) continue;
      return msgs;
    }
    throw new XennetError('netlink', `list ${what}: the dump was interrupted five times in a row; the host's links are changing too fast`);
  }

  async listLinks(): Promise<LinkState[]> {
    return (await this.listLinksWithSettings()).links;
  }

  /**
   * Every link, and each one's IP-stack settings as the same dump reports them (what
   * /proc/sys/net/ipv{4,6}/conf/<link>/ shows, without a file read per setting).
   */
  async listLinksWithSettings(): Promise<{ links: LinkState[]; settings: Map<string, LinkSettings> }> {
    const msgs = (await this.serial(() => this.dumpNow(rt.MessageType.GETLINK, linkDumpRequest(), 'links'))).filter((m) => m.type === rt.MessageType.NEWLINK).map((m) => parseLinkMessage(m.data));
    const nameOf = new Map<number, string>();
    for (const m of msgs) if (m.ifname) nameOf.set(m.index, m.ifname);
    const links = msgs.map((m) => toLinkState(m, nameOf));
    return { links, settings: new Map(msgs.map((m, i) => [links[i]!.name, settingsOf(m)])) };
  }

  /**
   * One link by name (RTM_GETLINK with IFLA_IFNAME: no dump), or undefined when no link has that
   * name. The kernel finds a link by its alternative names too (and refuses a name longer than a
   * link's with ERANGE): xennet's names are links' own names, so neither is one.
   */
  async getLink(name: string): Promise<LinkState | undefined> {
    if (Buffer.byteLength(name) > MAX_IFNAME_BYTES) return undefined;
    const one = async (request: Buffer): Promise<LinkMessage | undefined> => {
      try {
        const msgs = await this.serial(() => this.request(rt.MessageType.GETLINK, request, REQ));
        const m = msgs.find((x) => x.type === rt.MessageType.NEWLINK);
        return m ? parseLinkMessage(m.data) : undefined;
      } catch (e) {
        const errno = errnoName(e);
        if (errno === 'ENODEV') return undefined;
        throw new NetlinkError(`read link ${name}`, errno, e);
      }
    };
    const m = await one(getLinkByNameRequest(name));
    if (!m || m.ifname !== name) return undefined;
    const nameOf = new Map<number, string>();
    if (m.master) {
      const master = await one(getLinkByIndexRequest(m.master));
      if (master?.ifname) nameOf.set(m.master, master.ifname);
    }
    return toLinkState(m, nameOf);
  }

  async listAddresses(links: LinkState[]): Promise<AddressState[]> {
    const nameOf = new Map(links.map((l) => [l.index, l.name]));
    const msgs = (await this.dump(rt.MessageType.GETADDR, Buffer.alloc(8), 'addresses')).filter((m): m is AddressMessage => m.kind === 'address');
    const out: AddressState[] = [];
    for (const m of msgs) {
      const family = familyName(m.data.family);
      const local = ipToString(m.attrs.local ?? m.attrs.address);
      if (!family || !local) continue;
      const a: AddressState = {
        family,
        link: nameOf.get(m.data.index ?? -1) ?? `if${m.data.index}`,
        local,
        prefixLen: m.data.prefixlen ?? 0,
        scope: m.data.scope ?? 0,
        flags: flagNames(m.attrs.flags ?? m.data.flags),
      };
      const peer = m.attrs.local ? ipToString(m.attrs.address) : undefined;
      if (peer && peer !== local) a.peer = peer;
      const brd = ipToString(m.attrs.broadcast);
      if (brd) a.broadcast = brd;
      if (m.attrs.label) a.label = m.attrs.label;
      if (m.attrs.rtPriority) a.metric = m.attrs.rtPriority;
      const ci = m.attrs.cacheInfo;
      if (ci && ci.ifaValid !== undefined && ci.ifaValid !== 0xffffffff) {
        a.validLft = ci.ifaValid;
        a.preferredLft = ci.ifaPrefered ?? ci.ifaValid;
      }
      out.push(a);
    }
    return out;
  }

  /** The addresses on one link. */
  async addressesOf(link: LinkState): Promise<AddressState[]> {
    return (await this.listAddresses([link])).filter((a) => a.link === link.name);
  }

  async listRoutes(links: LinkState[]): Promise<RouteState[]> {
    const nameOf = new Map(links.map((l) => [l.index, l.name]));
    const out: RouteState[] = [];
    for (const family of [AF_INET, AF_INET6]) {
      const header = Buffer.alloc(12);
      header.writeUInt8(family, 0);
      const msgs = (await this.dump(rt.MessageType.GETROUTE, header, 'routes')).filter((m): m is RouteMessage => m.kind === 'route');
      for (const m of msgs) {
        const fam = familyName(m.data.family);
        if (!fam) continue;
        const dstAddr = ipToString(m.attrs.dst);
        const r: RouteState = {
          family: fam,
          table: m.attrs.table ?? m.data.table ?? 0,
          dst: dstAddr ? `${dstAddr}/${m.data.dstLen ?? 0}` : 'default',
          tos: m.data.tos ?? 0,
          protocol: enumNumber(rt.RouteProtocol, m.data.protocol),
          scope: enumNumber(rt.RouteScope, m.data.scope),
          type: enumNumber(rt.RouteType, m.data.type),
          flags: rt.formatRouteFlags(m.data.flags ?? {}),
          dev: m.attrs.oif !== undefined ? (nameOf.get(m.attrs.oif) ?? `if${m.attrs.oif}`) : null,
        };
        const src = ipToString(m.attrs.src);
        if (src) r.src = `${src}/${m.data.srcLen ?? 0}`;
        const gw = ipToString(m.attrs.gateway);
        if (gw) r.gateway = gw;
        if (m.attrs.priority !== undefined) r.metric = m.attrs.priority;
        const prefsrc = ipToString(m.attrs.prefsrc);
        if (prefsrc) r.prefsrc = prefsrc;
        if (m.attrs.metrics) {
          const metrics: Record<string, number> = {};
          for (const k of numericMetrics) {
            const v = decodeU32(m.attrs.metrics[k]);
            if (v !== undefined) metrics[k] = v;
          }
          if (Object.keys(metrics).length > 0) r.metrics = metrics;
        }
        if (m.attrs.pref && m.attrs.pref.length > 0) r.pref = m.attrs.pref.readUInt8(0);
        if (m.attrs.multipath) r.nexthopDevs = multipathIfindexes(m.attrs.multipath).map((i) => nameOf.get(i) ?? `if${i}`);
        out.push(r);
      }
    }
    return out;
  }

  async readHost(): Promise<HostState> {
    const links = await this.listLinks();
    const [addresses, routes, neighbours] = [await this.listAddresses(links), await this.listRoutes(links), await this.listNeighbours(links)];
    return { links, addresses, routes, neighbours };
  }

  /** Permanent and proxy neighbour entries of both families: what an operator set. */
  async listNeighbours(links: LinkState[]): Promise<NeighState[]> {
    const nameOf = new Map(links.map((l) => [l.index, l.name]));
    const out: NeighState[] = [];
    for (const proxy of [false, true]) {
      // struct ndmsg: family u8, pad u8, pad u16, ifindex s32, state u16, flags u8, type u8. A
      // dump whose flags are NTF_PROXY lists the proxy entries instead.
      const header = Buffer.alloc(12);
      if (proxy) header.writeUInt8(NTF_PROXY, 10);
      for (const m of await this.dump(rt.MessageType.GETNEIGH, header, proxy ? 'proxy neighbours' : 'neighbours')) {
        if (m.kind !== 'neighbor') continue;
        const family = familyName(m.data.family);
        const dst = ipToString(m.attrs.dst);
        const link = nameOf.get(m.data.ifindex ?? -1);
        if (!family || !dst || !link) continue;
        if (!proxy && (m.data.state?.permanent !== true || !m.attrs.lladdr || m.attrs.lladdr.length !== 6)) continue;
        const n: NeighState = { family, link, dst, proxy, router: m.data.flags?.router === true };
        if (!proxy) n.lladdr = macToString(m.attrs.lladdr);
        out.push(n);
      }
    }
    return out;
  }

  private async neighbourRequest(n: NeighState): Promise<[Parameters<RtSocket['newNeighbor']>[0], Parameters<RtSocket['newNeighbor']>[1]]> {
    const ifindex = await this.indexOf(n.link, 'neighbour');
    const flags: { proxy?: true; router?: true } = {};
    if (n.proxy) flags.proxy = true;
    if (n.router) flags.router = true;
    return [
      { family: familyNumber(n.family), ifindex, state: { permanent: true }, flags },
      { dst: ipToBuffer(n.dst), ...(n.lladdr !== undefined ? { lladdr: macToBuffer(n.lladdr) } : {}) },
    ];
  }

  async addNeighbour(n: NeighState): Promise<void> {
    const [data, attrs] = await this.neighbourRequest(n);
    // Replaces what the kernel may have learned for the address meanwhile (the host's traffic to
    // it, once the link is up): the operator's entry is the one to have.
    await this.change(`add neighbour ${n.dst} to ${n.link}`, () => this.sock.newNeighbor(data, attrs, { ...REQ, flags: FlagsNew.CREATE | FlagsNew.REPLACE }));
  }

  async deleteNeighbour(n: NeighState): Promise<void> {
    const [data, attrs] = await this.neighbourRequest(n);
    await this.change(`delete neighbour ${n.dst} from ${n.link}`, () => this.sock.delNeighbor(data, { dst: attrs?.dst }, REQ));
  }

  private async indexOf(name: string, operation: string): Promise<number> {
    const link = await this.getLink(name);
    if (!link) throw new NetlinkError(`${operation}: link ${name}`, 'ENODEV', undefined);
    return link.index;
  }

  private async change<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await this.serial(fn);
    } catch (e) {
      if (e instanceof XennetError) throw e;
      throw new NetlinkError(operation, errnoName(e), e);
    }
  }

  async createBridge(name: string, options: BridgeCreateOptions): Promise<void> {
    await this.change(`create bridge ${name}`, () => this.sock.newLink({}, { ifname: name, linkinfo: bridgeLinkInfo(options) }, { ...REQ, flags: CREATE_EXCL }));
  }

  async setBridgeNetfilter(name: string, nfCallIptables: boolean, nfCallIp6tables: boolean): Promise<void> {
    const index = await this.indexOf(name, 'set netfilter calls');
    await this.change(`set netfilter calls on bridge ${name}`, () =>
      this.sock.newLink({ index }, { linkinfo: bridgeNetfilterLinkInfo(nfCallIptables, nfCallIp6tables) }, REQ),
    );
  }

  /** Sets no_linklocal_learn on a bridge (see BridgeSettings). */
  async setBridgeNoLinkLocalLearn(name: string, on: boolean): Promise<void> {
    const index = await this.indexOf(name, 'set no_linklocal_learn');
    await this.change(`set no_linklocal_learn on bridge ${name}`, () => this.sock.newLink({ index }, { linkinfo: bridgeNoLinkLocalLearnLinkInfo(on) }, REQ));
  }

  async createVethPair(name: string, peer: string): Promise<void> {
    await this.change(`create veth pair ${name}/${peer}`, () => this.sock.newLink({}, { ifname: name, linkinfo: vethLinkInfo(peer) }, { ...REQ, flags: CREATE_EXCL }));
  }

  async deleteLink(name: string): Promise<void> {
    const index = await this.indexOf(name, 'delete');
    await this.change(`delete link ${name}`, () => this.sock.delLink({ index }, {}, REQ));
  }

  async rename(name: string, newName: string): Promise<void> {
    const index = await this.indexOf(name, 'rename');
    await this.change(`rename ${name} to ${newName}`, () => this.sock.setLink({ index }, { ifname: newName }, REQ));
  }

  /** Makes `name` a port of `master`, or frees it when master is null. */
  async setMaster(name: string, master: string | null): Promise<void> {
    const index = await this.indexOf(name, 'set master');
    const masterIndex = master === null ? 0 : await this.indexOf(master, `attach ${name}`);
    await this.change(master === null ? `detach ${name} from its bridge` : `attach ${name} to ${master}`, () =>
      this.sock.setLink({ index }, { master: masterIndex }, REQ),
    );
  }

  async setUp(name: string, up: boolean): Promise<void> {
    const index = await this.indexOf(name, 'set up/down');
    await this.change(`set ${name} ${up ? 'up' : 'down'}`, () => this.sock.setLink({ index, flags: up ? { up: true } : {}, change: { up: true } }, {}, REQ));
  }

  /** Sets ARP (IFF_NOARP cleared) and multicast (IFF_MULTICAST). */
  async setArpMulticast(name: string, arp: boolean, multicast: boolean): Promise<void> {
    const index = await this.indexOf(name, 'set arp/multicast');
    const flags: { noarp?: true; multicast?: true } = {};
    if (!arp) flags.noarp = true;
    if (multicast) flags.multicast = true;
    await this.change(`set ${name} arp ${arp ? 'on' : 'off'} multicast ${multicast ? 'on' : 'off'}`, () =>
      this.sock.setLink({ index, flags, change: { noarp: true, multicast: true } }, {}, REQ),
    );
  }

  async setMac(name: string, mac: string): Promise<void> {
    const index = await this.indexOf(name, 'set MAC');
    await this.change(`set MAC of ${name} to ${mac}`, () => this.sock.setLink({ index }, { address: macToBuffer(mac) }, REQ));
  }

  /** Sets the link's alias (IFLA_IFALIAS); an empty string clears it. */
  async setAlias(name: string, alias: string): Promise<void> {
    const index = await this.indexOf(name, 'set alias');
    await this.change(`set the alias of ${name}`, () => this.sock.setLink({ index }, { ifalias: alias }, REQ));
  }

  /**
   * The link's per-interface IP-stack settings the takeover carries (src/sys/sysctl.ts); `default`:
   * what a new link starts with. Read from /proc/sys: the kernel has no netlink request that sets
   * the IPv6 ones, and the two are read and written alike.
   */
  readStackSettings(name: string): Promise<StackSettings | undefined> {
    return Promise.resolve(readStackSettings(name));
  }

  /** Sets one of them; ENODEV when the link (its settings directory) is gone. */
  async setStackSetting(name: string, family: 'ipv4' | 'ipv6', key: string, value: string): Promise<void> {
    let written: boolean;
    try {
      written = writeInterfaceSysctl(family, name, key, value);
    } catch (e) {
      throw new NetlinkError(`set net.${family}.conf.${name}.${key} to ${value}`, (e as NodeJS.ErrnoException).code ?? 'EIO', e);
    }
    if (!written) throw new NetlinkError(`set net.${family}.conf.${name}.${key} to ${value}`, 'ENODEV', undefined);
  }

  async setMtu(name: string, mtu: number): Promise<void> {
    const index = await this.indexOf(name, 'set MTU');
    await this.change(`set MTU of ${name} to ${mtu}`, () => this.sock.setLink({ index }, { mtu }, REQ));
  }

  private async addressRequest(a: AddressState): Promise<[Parameters<RtSocket['newAddress']>[0], AddressAttrs]> {
    const index = await this.indexOf(a.link, 'address');
    const attrs: AddressAttrs = { local: ipToBuffer(a.local), address: ipToBuffer(a.peer ?? a.local) };
    if (a.broadcast) attrs.broadcast = ipToBuffer(a.broadcast);
    if (a.label) attrs.label = a.label;
    if (a.metric !== undefined) attrs.rtPriority = a.metric;
    const flags: Record<string, true> = {};
    for (const f of a.flags) if (f === 'nodad' || f === 'noprefixroute' || f === 'managetempaddr' || f === 'homeaddress' || f === 'mcautojoin') flags[f] = true;
    attrs.flags = flags;
    if (a.validLft !== undefined) attrs.cacheInfo = { ifaValid: a.validLft, ifaPrefered: a.preferredLft ?? a.validLft, cstamp: 0, tstamp: 0 };
    return [{ family: familyNumber(a.family), prefixlen: a.prefixLen, scope: a.scope, index }, attrs];
  }

  async addAddress(a: AddressState): Promise<void> {
    const [data, attrs] = await this.addressRequest(a);
    await this.change(`add address ${a.local}/${a.prefixLen} to ${a.link}`, () => this.sock.newAddress(data, attrs, { ...REQ, flags: CREATE_EXCL }));
  }

  async deleteAddress(a: AddressState): Promise<void> {
    const [data, attrs] = await this.addressRequest(a);
    await this.change(`delete address ${a.local}/${a.prefixLen} from ${a.link}`, () =>
      this.sock.delAddress(data, { local: attrs.local, address: attrs.address }, REQ),
    );
  }

  private async routeRequest(r: RouteState): Promise<[Parameters<RtSocket['newRoute']>[0], RouteAttrs]> {
    const [dst, dstLen] = r.dst === 'default' ? [undefined, 0] : r.dst.split('/');
    const attrs: RouteAttrs = { table: r.table };
    if (dst) attrs.dst = ipToBuffer(dst);
    if (r.dev) attrs.oif = await this.indexOf(r.dev, 'route');
    if (r.gateway) attrs.gateway = ipToBuffer(r.gateway);
    if (r.metric !== undefined) attrs.priority = r.metric;
    if (r.prefsrc) attrs.prefsrc = ipToBuffer(r.prefsrc);
    let srcLen = 0;
    if (r.src) {
      const [s, len] = r.src.split('/');
      attrs.src = ipToBuffer(s ?? '');
      srcLen = Number(len);
    }
    if (r.metrics) {
      const m: Partial<Record<NumericMetric, Buffer>> = {};
      for (const k of numericMetrics) {
        const v = r.metrics[k];
        if (v !== undefined) m[k] = encodeU32(v);
      }
      attrs.metrics = m;
    }
    if (r.pref !== undefined) attrs.pref = Buffer.from([r.pref]);
    const data = {
      family: familyNumber(r.family),
      dstLen: Number(dstLen ?? 0),
      srcLen,
      tos: r.tos,
      table: r.table < 256 ? r.table : 252,
      protocol: r.protocol,
      scope: r.scope,
      type: r.type,
      // RTNH_F_ONLINK survives a re-add; RTNH_F_LINKDOWN/DEAD are kernel-derived.
      flags: rt.parseRouteFlags(r.flags & 0x4),
    };
    return [data, attrs];
  }

  async addRoute(r: RouteState): Promise<void> {
    const [data, attrs] = await this.routeRequest(r);
    await this.change(`add route ${r.dst}${r.gateway ? ` via ${r.gateway}` : ''} dev ${r.dev} table ${r.table}`, () =>
      this.sock.newRoute(data, attrs, { ...REQ, flags: CREATE_EXCL }),
    );
  }

  async deleteRoute(r: RouteState): Promise<void> {
    const [data, attrs] = await this.routeRequest(r);
    await this.change(`delete route ${r.dst}${r.gateway ? ` via ${r.gateway}` : ''} dev ${r.dev} table ${r.table}`, () => this.sock.delRoute(data, attrs, REQ));
  }
}

