/** The split of the netns suites between `npm test`'s netns step and test:nft-only: each test runs once, those needing the xtables programs in both. */
import assert from 'node:assert/strict';
import { NEEDS_XTABLES_PROGRAMS, NFT_ONLY_SUITES, nftOnlyPattern, restPattern } from '../nft-only/suites.js';

const titles: Record<string, string[]> = {
  'firewall.test.js': [
    'guest firewall (netns, simulated Xen host, real traffic, nftables backend) allow_in opens exactly the listed ports',
    'guest firewall (netns, simulated Xen host, real traffic, iptables-nft) allow_in opens exactly the listed ports',
    'guest firewall (netns, simulated Xen host, real traffic, nftables backend) keeps foreign rules: a FORWARD rule and an ebtables chain of someone else survive apply',
    'guest firewall (netns, simulated Xen host, real traffic, nftables backend) nftables, with the xtables programs installed: plan and apply run no iptables, ebtables or ipset program',
  ],
  'nft-native.test.js': ['nf_tables written natively (netns): what nft -f writes, byte for byte'],
  'firewall-integrity.test.js': ['firewall integrity (netns, xtables backend): no bypass', 'firewall integrity (netns, nftables backend): no bypass'],
  'hostile-guest.test.js': [
    "hostile guests and careless operators (netns, nftables backend): the review's findings stay closed status sees a rule of another table that may forge the established mark",
    "hostile guests and careless operators (netns, xtables backend): the review's findings stay closed x",
    "hostile guests and careless operators (netns, nftables backend): the review's findings stay closed x",
  ],
  'daemon.test.js': [
    'xennet daemon (netns): hooks in milliseconds xtables: a flush of the root jumps',
    'xennet daemon (netns): hooks in milliseconds drift while idle',
    'xennet daemon (netns): hooks in milliseconds status through the daemon on a host where iptables-legacy has a table (whose changes nothing announces): read every time',
  ],
};

describe('the netns suites split between npm test\'s netns step and test:nft-only', () => {
  it('every test runs in one of them; only those that need the xtables programs in both', () => {
    for (const s of NFT_ONLY_SUITES) {
      const ts = titles[s.file];
      assert.ok(ts, s.file);
      for (const t of ts) {
        const nft = nftOnlyPattern(s).test(t);
        const rest = restPattern(s).test(t);
        const needs = NEEDS_XTABLES_PROGRAMS.some((n) => t.includes(n));
        assert.ok(nft || rest, `${t}: runs nowhere`);
        assert.equal(nft && rest, needs && nft, `${t}: runs twice`);
      }
    }
    assert.ok(restPattern(NFT_ONLY_SUITES[0]!).test(titles['firewall.test.js']![1]!), 'iptables-nft stays in netns');
    assert.ok(!restPattern(NFT_ONLY_SUITES[0]!).test(titles['firewall.test.js']![0]!), 'nftables goes to nft-only');
    assert.ok(nftOnlyPattern(NFT_ONLY_SUITES[4]!).test(titles['daemon.test.js']![1]!) && !restPattern(NFT_ONLY_SUITES[4]!).test(titles['daemon.test.js']![1]!));
  });
});
