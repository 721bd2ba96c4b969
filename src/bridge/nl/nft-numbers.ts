/**
 * nf_tables' numbers that both the netlink reader and the native writer speak (pure: no socket):
 * families, verdict codes, meta keys, hooks, and the `struct nfgenmsg` every message starts with
 * (include/uapi/linux/netfilter.h, netfilter/nf_tables.h, netfilter_bridge.h).
 */
export const NFPROTO = { inet: 1, ipv4: 2, bridge: 7, ipv6: 10 } as const;
export type NftFamilyName = keyof typeof NFPROTO;

/** Verdict codes (NF_DROP, NF_ACCEPT, NFT_CONTINUE ... NFT_RETURN). */
export const VERDICT = { drop: 0, accept: 1, continue: -1, break: -2, jump: -3, goto: -4, return: -5 } as const;

/** The meta keys xennet reads or sets (NFT_META_*). */
export const NFT_META = { protocol: 1, mark: 3, iifname: 6, oifname: 7, l4proto: 16, pkttype: 19 } as const;

/** The hooks of xennet's base chains: the same numbers in the bridge family (NF_BR_*) and inet (NF_INET_*). */
export const HOOK = { prerouting: 0, forward: 2 } as const;

/** `struct nfgenmsg`: the family, version 0, resource id 0 (big endian). */
export function nfgenmsg(family: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt8(family, 0);
  return b;
}
