/**
 * How the firewall hands learning its packets, on either backend: nfnetlink_log group
 * LEARN_GROUP, with one of two prefixes (the daemon listens to that group and reads the prefix).
 */

/** The nfnetlink_log group of learning's packets ("xn"). */
export const LEARN_GROUP = 0x786e;
/** A learning guest's own packets (its DAD, ARP probes, client messages) and its server replies. */
export const LEARN_PREFIX = 'XN learn';
/** A frame from another port that claims an address a guest may be testing (a defence). */
export const DEFEND_PREFIX = 'XN defend';
/** What each rule that hands packets to the daemon lets through: per second, and in a burst. */
export const HANDOVER_RATE = { perSecond: 20, burst: 40 } as const;
/**
 * How long an address a guest tests stays tentative: a defence within this time refuses it. A
 * second (RFC 4862's RetransTimer): a proxy-NDP router answers after up to 0.8 s (proxy_delay).
 */
export const TENTATIVE_MS = 1000;
/**
 * The longest lifetime a binding's kernel element carries (ipset's limit, 2^31/1000 s: 24.8 days).
 * A longer lease is written with no end in the kernel, and the daemon ends it.
 */
export const MAX_KERNEL_TIMEOUT_S = 2_147_483;
