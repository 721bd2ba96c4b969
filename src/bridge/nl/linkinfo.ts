/**
 * Typed IFLA_LINKINFO encoders and decoders for the link kinds xennet creates (bridge, veth), on
 * top of the `netlink` package's attribute helpers, which leave these nested attributes as raw
 * Buffers.
 */
import netlink from 'netlink';
import type { BridgeSettings } from '../model.js';

const { ifla, AttrStream } = netlink;
type StreamData = ReturnType<typeof ifla.formatInfo>;

/** Serialises attribute stream data (a buffer, buffers, or a writer function) into one Buffer. */
export function streamToBuffer(data: StreamData): Buffer {
  const out = new AttrStream();
  out.emit(data);
  return Buffer.concat(out.bufs);
}

const u8 = (v: number): Buffer => Buffer.from([v & 0xff]);
const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0); // netlink attributes are host-endian; this machine family is little-endian
  return b;
};
const readU32 = (b: Buffer | undefined): number | undefined => (b && b.length >= 4 ? b.readUInt32LE(0) : undefined);
const readU8 = (b: Buffer | undefined): number | undefined => (b && b.length >= 1 ? b.readUInt8(0) : undefined);

export interface BridgeCreateOptions {
  stpState: number;
  forwardDelay: number;
  nfCallIptables: boolean;
  nfCallIp6tables: boolean;
  multicastSnooping: boolean;
  noLinkLocalLearn: boolean;
}

const NO_LL_LEARN = 1 << ifla.BridgeBooloptId.NO_LL_LEARN;

/** IFLA_BR_MULTI_BOOLOPT setting (or clearing) no_linklocal_learn only. */
const noLinkLocalLearnOpt = (on: boolean): Buffer => ifla.formatBridgeBooloptMask({ flags: on ? NO_LL_LEARN : 0, mask: NO_LL_LEARN });

/** IFLA_LINKINFO for a new bridge. */
export function bridgeLinkInfo(o: BridgeCreateOptions): Buffer {
  const data = streamToBuffer(
    ifla.formatBridge({
      stpState: u32(o.stpState),
      forwardDelay: u32(o.forwardDelay),
      mcastSnooping: u8(o.multicastSnooping ? 1 : 0),
      nfCallIptables: u8(o.nfCallIptables ? 1 : 0),
      nfCallIp6tables: u8(o.nfCallIp6tables ? 1 : 0),
      multiBoolopt: noLinkLocalLearnOpt(o.noLinkLocalLearn),
    }),
  );
  return streamToBuffer(ifla.formatInfo({ kind: 'bridge', data }));
}

/** IFLA_LINKINFO that sets no_linklocal_learn on an existing bridge. */
export function bridgeNoLinkLocalLearnLinkInfo(on: boolean): Buffer {
  return streamToBuffer(ifla.formatInfo({ kind: 'bridge', data: streamToBuffer(ifla.formatBridge({ multiBoolopt: noLinkLocalLearnOpt(on) })) }));
}

/** IFLA_LINKINFO that changes netfilter call flags on an existing bridge. */
export function bridgeNetfilterLinkInfo(nfCallIptables: boolean, nfCallIp6tables: boolean): Buffer {
  const data = streamToBuffer(ifla.formatBridge({ nfCallIptables: u8(nfCallIptables ? 1 : 0), nfCallIp6tables: u8(nfCallIp6tables ? 1 : 0) }));
  return streamToBuffer(ifla.formatInfo({ kind: 'bridge', data }));
}

/** IFLA_LINKINFO for a veth pair; the peer is an ifinfomsg followed by its own link attributes. */
export function vethLinkInfo(peerName: string): Buffer {
  const ifinfomsg = Buffer.alloc(16); // family, type, index, flags, change all zero
  const peerAttrs = streamToBuffer(ifla.formatLinkAttrs({ ifname: peerName }));
  const data = streamToBuffer(ifla.formatVethInfo({ peer: Buffer.concat([ifinfomsg, peerAttrs]) }));
  return streamToBuffer(ifla.formatInfo({ kind: 'veth', data }));
}

export interface DecodedLinkInfo {
  kind: string | null;
  slaveKind: string | null;
  bridge?: BridgeSettings;
}

export function decodeLinkInfo(raw: Buffer | undefined): DecodedLinkInfo {
  if (!raw) return { kind: null, slaveKind: null };
  const info = ifla.parseInfo(raw);
  const result: DecodedLinkInfo = { kind: info.kind ?? null, slaveKind: info.slaveKind ?? null };
  if (info.kind === 'bridge' && info.data) {
    const b = ifla.parseBridge(info.data);
    result.bridge = {
      stpState: readU32(b.stpState) ?? 0,
      forwardDelay: readU32(b.forwardDelay) ?? 0,
      nfCallIptables: (readU8(b.nfCallIptables) ?? 0) !== 0,
      nfCallIp6tables: (readU8(b.nfCallIp6tables) ?? 0) !== 0,
      noLinkLocalLearn: b.multiBoolopt !== undefined && b.multiBoolopt.length >= 8 && ((ifla.parseBridgeBooloptMask(b.multiBoolopt).flags ?? 0) & NO_LL_LEARN) !== 0,
    };
  }
  return result;
}

export function decodeU32(b: Buffer | undefined): number | undefined {
  return readU32(b);
}

export function encodeU32(v: number): Buffer {
  return u32(v);
}
