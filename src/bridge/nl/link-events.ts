/**
 * Changes to links, addresses and routes, as the kernel announces them on rtnetlink's multicast
 * groups: what `xennet status` reads of them (a guest port up or down, joining or leaving a
 * bridge, dom0's addresses and default gateway) cannot change without a message here, as long
 * as the link is up (the kernel announces an attribute change of a link that is down, such as a
 * bridge option or an alias, to nobody: whoever relies on this must read down links itself).
 */
import { randomInt } from 'node:crypto';
import netlink from 'netlink';

const NETLINK_ROUTE = 0;
const RTNLGRP_LINK = 1;
const RTNLGRP_IPV4_IFADDR = 5;
const RTNLGRP_IPV4_ROUTE = 7;
const RTNLGRP_IPV6_IFADDR = 9;
const RTNLGRP_IPV6_ROUTE = 11;
const RTM_NEWLINK = 16;
const RTM_GETLINK = 18;
const NLM_F_REQUEST = 1;
/** Types below this are netlink's own (NOOP, ERROR, DONE, OVERRUN): they announce nothing. */
const NLMSG_MIN_TYPE = 16;
const SETTLE_MS = 2000;

export interface LinkChangeWatch {
  /**
   * Resolves once every change the kernel made before this call has been passed to `onChange`: a
   * request on the same socket (the link `lo`), whose answer the kernel queues behind the
   * announcements already queued there. Rejects after 2 s without the answer.
   */
  settled(): Promise<void>;
  close(): void;
}

/** Calls `onChange` for every batch of link, address or route messages; `onLost` when messages were dropped (buffer overrun). */
export function watchLinkChanges(onChange: () => void, onLost: () => void): LinkChangeWatch {
  const sock = netlink.createNetlink(NETLINK_ROUTE, { recvBufferSize: 4 * 1024 * 1024, sendBufferSize: 65536 });
  for (const g of [RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV6_ROUTE]) sock.addMembership(g);
  const port = sock.address().port;
  // The answers awaited, by the sequence number of their request (random: an announcement
  // carries the number of whoever made the change, which may be any).
  const waiting = new Map<number, { done: () => void; timer: NodeJS.Timeout }>();
  // Every message comes here (no request goes through the library's reply matching, which goes
  // by sequence number alone and would take an announcement for an answer).
  sock.on('message', (msgs) => {
    let changed = false;
    for (const m of msgs) {
      const w = m.type === RTM_NEWLINK && m.port === port ? waiting.get(m.seq) : undefined;
      if (w) {
        waiting.delete(m.seq);
        clearTimeout(w.timer);
        // Announcements before the answer in this batch are counted first.
        if (changed) onChange();
        changed = false;
        w.done();
      } else if (m.type >= NLMSG_MIN_TYPE) changed = true;
    }
    if (changed) onChange();
  });
  sock.on('error', () => onLost());
  sock.on('invalid', () => onChange());
  sock.unref();
  const lo = Buffer.alloc(16);
  lo.writeInt32LE(1, 4); // struct ifinfomsg: ifi_family 0, ifi_type 0, ifi_index 1 (lo)
  return {
    settled: () =>
      new Promise<void>((resolve, reject) => {
        let seq = randomInt(1, 0xffffffff);
        while (waiting.has(seq)) seq = randomInt(1, 0xffffffff);
        const timer = setTimeout(() => {
          waiting.delete(seq);
          reject(new Error('no answer from rtnetlink within 2 s'));
        }, SETTLE_MS);
        waiting.set(seq, { done: resolve, timer });
        sock.send(RTM_GETLINK, lo, { flags: NLM_F_REQUEST, seq }, (err) => {
          if (!err) return;
          waiting.delete(seq);
          clearTimeout(timer);
          reject(err);
        });
      }),
    close: () => {
      for (const w of waiting.values()) clearTimeout(w.timer);
      waiting.clear();
      sock.close();
    },
  };
}
