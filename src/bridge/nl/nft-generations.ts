/**
 * nf_tables ruleset generations, as the kernel announces them: every commit to nf_tables (by
 * iptables-nft, ip6tables-nft, ebtables-nft or nft) ends with an NFT_MSG_NEWGEN message on the
 * NFNLGRP_NFTABLES multicast group, naming the process that made it. iptables-legacy makes none.
 */
import netlink from 'netlink';
import { nfnlAttributes } from './nfnl.js';

const NETLINK_NETFILTER = 12;
const NFNLGRP_NFTABLES = 7;
const NFNL_SUBSYS_NFTABLES = 10;
const NFT_MSG_NEWGEN = 15;
const NFTA_GEN_PROC_PID = 2;
const NFTA_GEN_PROC_NAME = 3;

export interface GenerationEvent {
  /** The process that committed (0 when the kernel does not say). */
  pid: number;
  name: string;
}

/** Calls `onGeneration` for every ruleset commit; `onLost` when events were dropped (buffer overrun). */
export function watchRulesetGenerations(onGeneration: (e: GenerationEvent) => void, onLost: () => void): { close(): void } {
  const sock = netlink.createNetlink(NETLINK_NETFILTER, { recvBufferSize: 4 * 1024 * 1024, sendBufferSize: 65536 });
  sock.addMembership(NFNLGRP_NFTABLES);
  sock.on('message', (msgs) => {
    for (const m of msgs) {
      if (m.type !== ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN)) continue;
      const attrs = nfnlAttributes(m.data);
      const pid = attrs.get(NFTA_GEN_PROC_PID);
      const name = attrs.get(NFTA_GEN_PROC_NAME);
      onGeneration({ pid: pid && pid.length >= 4 ? pid.readUInt32BE(0) : 0, name: name ? name.toString('utf8').replace(/\0+$/, '') : '' });
    }
  });
  sock.on('error', () => onLost());
  sock.on('invalid', () => undefined);
  sock.unref();
  return { close: () => sock.close() };
}
