/**
 * Which netns suites (and which of their tests) `test:nft-only` runs again on a host without the
 * xtables programs, and the split `npm test` makes from it: its netns step (`test:netns:rest`)
 * runs everything else, so that each test runs once, the nftables backend's where it is proven
 * to need no xtables program. `test:netns` alone still runs every netns test.
 */

export interface NftOnlySuite {
  file: string;
  /** The tests nft-only runs: those whose full title has this text (all of them when absent) ... */
  grep?: string;
  /** ... or, with invert, those whose title does not. */
  invert?: boolean;
}

/** The suites (and their nftables parts) that do not test xtables itself. */
export const NFT_ONLY_SUITES: readonly NftOnlySuite[] = [
  { file: 'firewall.test.js', grep: 'nftables backend' },
  { file: 'nft-native.test.js' },
  { file: 'firewall-integrity.test.js', grep: 'nftables backend' },
  { file: 'hostile-guest.test.js', grep: 'nftables backend' },
  // The daemon's tests on the default backend (those that move to or flush xtables excepted).
  { file: 'daemon.test.js', grep: 'xtables', invert: true },
];

/** Tests of those suites that skip themselves without the xtables programs: the netns step keeps them. */
export const NEEDS_XTABLES_PROGRAMS = ['keeps foreign rules', 'forge the established mark', 'iptables-legacy has a table', 'with the xtables programs installed'];

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** What nft-only runs of a suite, as a full-title pattern. */
export function nftOnlyPattern(s: NftOnlySuite): RegExp {
  if (s.grep === undefined) return /^/;
  return s.invert ? new RegExp(`^(?!.*${escape(s.grep)})`) : new RegExp(escape(s.grep));
}

/** What the netns step of `npm test` runs of a suite: the rest, and the tests that need the programs. */
export function restPattern(s: NftOnlySuite): RegExp {
  const needs = NEEDS_XTABLES_PROGRAMS.map(escape).join('|');
  if (s.grep === undefined) return new RegExp(`^(?=.*(?:${needs}))`);
  return s.invert ? new RegExp(`^(?=.*(?:${escape(s.grep)}|${needs}))`) : new RegExp(`^(?:(?!.*${escape(s.grep)})|(?=.*(?:${needs})))`);
}
