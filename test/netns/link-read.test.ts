/**
 * xennet's own readers of kernel objects against the independent readers: its reader of
 * RTM_NEWLINK messages (src/bridge/nl/link-message.ts) against `ip -d -j link` for the links and
 * /proc/sys for each link's IP-stack settings (which xennet takes from the link dump's
 * IFLA_AF_SPEC instead of a file per setting); its list of ipsets (src/bridge/nl/ipset.ts, what
 * the nftables backend sweeps of the xtables backend's) against `ipset list -n`.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import type { LinkState } from '../../src/bridge/model.js';
import { guestPortStack } from '../../src/sys/sysctl.js';
import { run } from '../../src/sys/exec.js';
import { createNetns, destroy, sweepLeftovers, type Netns } from './lib/netns.js';

const readerJs = fileURLToPath(new URL('./lib/link-read-main.js', import.meta.url));
const ipsetReaderJs = fileURLToPath(new URL('./lib/ipset-read-main.js', import.meta.url));

interface Read {
  links: LinkState[];
  one: (LinkState | undefined)[];
  missing: LinkState | null;
  altnames: (LinkState | null)[];
  stack: Record<string, Record<string, string | null>>;
}

interface IpLink {
  ifindex: number;
  ifname: string;
  flags: string[];
  mtu: number;
  master?: string;
  address?: string;
  link_index?: number;
  link_netnsid?: number;
  link?: string;
  ifalias?: string;
  linkinfo?: { info_kind?: string; info_data?: { stp_state?: number; forward_delay?: number; nf_call_iptables?: number; nf_call_ip6tables?: number } };
}

describe('links and ipsets read natively (netns): as ip, /proc/sys and ipset show them', function () {
  this.timeout(60_000);
  let ns: Netns | undefined;
  let other: Netns | undefined;

  before(async () => {
    await sweepLeftovers();
    ns = await createNetns('links');
    const ip = (...a: string[]): Promise<string> => ns!.ip(...a);
    // First (the dump goes by ifindex): a link described in more than 64 KiB, the read buffer, by
    // as many alternative names as the kernel takes. Its message is cut in that buffer, and without
    // a size for the dump the kernel ended it at this link, silently: this link and every
    // link after it were missing from the list.
    await ip('link', 'add', 'big0', 'type', 'veth', 'peer', 'name', 'big1');
    const altnames = Array.from({ length: 520 }, (_, i) => `link property add dev big0 altname b${String(i).padStart(3, '0')}${'x'.repeat(120)}\n`).join('');
    await run('ip', ['-n', ns.name, '-force', '-batch', '-'], { input: altnames });
    const big = (await ns.ipJson<{ altnames?: string[] }[]>('link', 'show', 'big0'))[0];
    // Each name takes 132 bytes of the message (a 4-byte header and 125 bytes, padded); the link's
    // IPv4 and IPv6 settings alone take more than 600 (IFLA_AF_SPEC).
    assert.ok((big?.altnames?.length ?? 0) * 132 + 600 > 65536, `big0 has ${big?.altnames?.length} alternative names: its message must exceed 64 KiB`);
    await ip('link', 'add', 'xbr0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0', 'nf_call_iptables', '1');
    await ip('link', 'add', 'vifa', 'type', 'veth', 'peer', 'name', 'vifb');
    await ip('link', 'set', 'vifa', 'master', 'xbr0', 'alias', 'guest ä port', 'up');
    await ip('link', 'property', 'add', 'dev', 'vifa', 'altname', 'vifa-alt', 'altname', 'vifa-alternative-name');
    await ip('link', 'set', 'vifb', 'mtu', '1400', 'address', '00:16:3e:12:34:56', 'arp', 'off', 'multicast', 'off');
    await ip('link', 'add', 'dum0', 'type', 'veth', 'peer', 'name', 'dum1');
    // No IPv6 stack on a link under IPv6's minimum MTU: neither a dump nor /proc/sys has its settings.
    await ip('link', 'add', 'small0', 'mtu', '1000', 'type', 'veth', 'peer', 'name', 'small1');
    await ip('link', 'set', 'xbr0', 'up');
    // A veth whose peer is in another namespace (a NIC's place in the simulated hosts: its
    // IFLA_LINK is an index there), and a macvlan stacked on a link here.
    other = await createNetns('links-other');
    await ip('link', 'add', 'xout', 'type', 'veth', 'peer', 'name', 'xin', 'netns', other.name);
    await ip('link', 'add', 'mv0', 'link', 'dum0', 'type', 'macvlan', 'mode', 'bridge');
    const set = (family: string, link: string, key: string, value: string): Promise<string> => ns!.sh('sysctl', ['-q', '-w', `net.${family}.conf.${link}.${key}=${value}`]);
    await set('ipv6', 'vifa', 'disable_ipv6', '1');
    await set('ipv4', 'vifa', 'drop_unicast_in_l2_multicast', '1');
    await set('ipv4', 'vifa', 'rp_filter', '1');
    await set('ipv4', 'vifb', 'rp_filter', '2');
    await set('ipv4', 'dum0', 'drop_unicast_in_l2_multicast', '1');
    await set('ipv6', 'small0', 'disable_ipv6', '1').catch(() => undefined);
  });
  after(() => destroy(ns, other));

  const read = async (): Promise<Read> => {
    const r = await ns!.exec('node', [readerJs]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Read;
  };

  it('every link: name, index, kind, master, MAC, MTU, flags, veth peer, alias, bridge settings', async () => {
    const { links, one, missing, altnames } = await read();
    const shown = await ns!.ipJson<IpLink[]>('-d', 'link', 'show');
    assert.deepEqual(links.map((l) => l.name).sort(), shown.map((l) => l.ifname).sort());
    for (const s of shown) {
      const l = links.find((x) => x.name === s.ifname)!;
      const what = `${s.ifname}: ${JSON.stringify(l)}`;
      assert.equal(l.index, s.ifindex, what);
      assert.equal(l.kind, s.linkinfo?.info_kind ?? null, what);
      assert.equal(l.master, s.master ?? null, what);
      assert.equal(l.mac, s.address ?? '', what);
      assert.equal(l.mtu, s.mtu, what);
      assert.equal(l.up, s.flags.includes('UP'), what);
      assert.equal(l.arp, !s.flags.includes('NOARP'), what);
      assert.equal(l.multicast, s.flags.includes('MULTICAST'), what);
      assert.equal(l.alias, s.ifalias, what);
      const lowerHere = s.link_netnsid === undefined ? (s.link_index ?? shown.find((x) => x.ifname === s.link)?.ifindex) : undefined;
      if (l.kind === 'veth') assert.equal(l.peerIndex, lowerHere ?? null, what);
      else assert.equal(l.peerIndex, null, what);
      assert.equal(l.lower, l.kind === 'macvlan' ? lowerHere : undefined, what);
      const data = s.linkinfo?.info_data;
      if (l.kind === 'bridge') {
        assert.deepEqual(
          { stp: l.bridge?.stpState, delay: l.bridge?.forwardDelay, v4: l.bridge?.nfCallIptables, v6: l.bridge?.nfCallIp6tables },
          { stp: data?.stp_state, delay: data?.forward_delay, v4: data?.nf_call_iptables === 1, v6: data?.nf_call_ip6tables === 1 },
          what,
        );
      } else assert.equal(l.bridge, undefined, what);
    }
    // The names and values the test set are there (not only agreement on defaults).
    const byName = new Map(links.map((l) => [l.name, l]));
    assert.equal(byName.get('xout')?.peerIndex, null, 'a peer in another namespace is none here');
    assert.equal(byName.get('mv0')?.lower, byName.get('dum0')?.index, 'the macvlan is on dum0');
    assert.equal(byName.get('vifa')?.master, 'xbr0');
    assert.equal(byName.get('vifa')?.alias, 'guest ä port');
    assert.deepEqual([byName.get('vifb')?.mtu, byName.get('vifb')?.mac, byName.get('vifb')?.arp, byName.get('vifb')?.multicast], [1400, '00:16:3e:12:34:56', false, false]);
    assert.equal(byName.get('vifb')?.peerIndex, byName.get('vifa')?.index);
    assert.equal(byName.get('xbr0')?.bridge?.nfCallIptables, true);
    assert.equal(byName.get('big1')?.peerIndex, byName.get('big0')?.index, 'the link of 64 KiB and its peer are read');
    // One link by name reads as the dump does; a name that is not there is undefined.
    assert.deepEqual(one, links);
    assert.equal(missing, null);
    // the kernel finds vifa by its alternative names too; a read by name is of links' own names
    assert.deepEqual(altnames, [null, null]);
  });

  it("every link's IP-stack settings from the dump are what /proc/sys shows", async () => {
    const { links, stack } = await read();
    const seen = new Set<string>();
    for (const l of links) {
      for (const s of guestPortStack) {
        const r = await ns!.exec('cat', [`/proc/sys/net/${s.family}/conf/${l.name}/${s.key}`]);
        const file = r.code === 0 ? r.stdout.trim() : null;
        assert.equal(stack[l.name]?.[`${s.family}/${s.key}`], file, `${l.name} ${s.family}/${s.key}`);
        seen.add(`${s.key}=${file}`);
      }
    }
    // The settings made above, read at their positions (a wrong position reads another setting).
    assert.deepEqual(stack['vifa'], { 'ipv6/disable_ipv6': '1', 'ipv4/drop_unicast_in_l2_multicast': '1', 'ipv4/rp_filter': '1' });
    assert.deepEqual(stack['vifb'], { 'ipv6/disable_ipv6': '0', 'ipv4/drop_unicast_in_l2_multicast': '0', 'ipv4/rp_filter': '2' });
    assert.equal(stack['small0']?.['ipv6/disable_ipv6'], null);
    assert.ok(seen.has('disable_ipv6=0') && seen.has('disable_ipv6=1') && seen.has('rp_filter=2'));
  });

  it('every ipset of the namespace by name, as `ipset list -n` shows them; none when there are none', async () => {
    const names = async (): Promise<string[]> => {
      const r = await ns!.exec('node', [ipsetReaderJs]);
      assert.equal(r.code, 0, r.stderr);
      return (JSON.parse(r.stdout) as string[]).sort();
    };
    const listed = async (): Promise<string[]> => (await ns!.sh('ipset', ['list', '-n'])).split('\n').filter((l) => l !== '').sort();
    await ns!.sh('ipset', ['create', 'xn4-vif1.0', 'hash:ip', 'timeout', '0']);
    await ns!.sh('ipset', ['create', 'xn6-vif1.0', 'hash:ip', 'family', 'inet6']);
    await ns!.sh('ipset', ['create', 'someone-else', 'hash:net']);
    assert.deepEqual(await names(), ['someone-else', 'xn4-vif1.0', 'xn6-vif1.0']);
    assert.deepEqual(await names(), await listed());
    await ns!.sh('ipset', ['destroy']);
    assert.deepEqual(await names(), []);
  });
});
