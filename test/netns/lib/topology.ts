/**
 * The dom0-on-a-LAN topology of the bridge tests:
 *
 *   LAN namespace: lan0 192.168.0.1/24, 2001:db8::1/64, and 198.51.100.1 on lo (only reachable
 *                  from dom0 through its default route)
 *   dom0 namespace: eth0 (veth to lan0) MTU 1400, 192.168.0.2/24, secondary 192.168.0.3/24
 *                  (label eth0:1), 2001:db8::2/64; default routes via the gateway (IPv4 and IPv6),
 *                  10.8.0.0/16 with a source address, 10.9.0.0/16 metric 50 in table 100.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostSideStack } from '../../../src/sys/sysctl.js';
import { createNetns, destroy, type Netns } from './netns.js';

export interface HostTopology {
  lan: Netns;
  dom0: Netns;
  stateDir: string;
  teardown(): Promise<void>;
}

/** Per-interface IP-stack settings the NIC has (not the kernel's defaults), `<nic>` its name. */
export const NIC_SETTINGS: Readonly<Record<string, string>> = {
  'net.ipv4.conf.<nic>.arp_ignore': '1',
  'net.ipv4.conf.<nic>.rp_filter': '2',
  'net.ipv6.conf.<nic>.accept_ra': '2',
  'net.ipv6.conf.<nic>.autoconf': '0',
};

/**
 * `nic` names dom0's NIC (default eth0; e.g. enp3s0 for Debian's predictable names). Its
 * secondary address has the label <nic>:1 when that fits in 15 characters.
 */
export async function buildHostTopology(nic = 'eth0'): Promise<HostTopology> {
  const lan = await createNetns('lan');
  let dom0: Netns | undefined;
  const stateDir = mkdtempSync(join(tmpdir(), 'xnt-state-'));
  try {
    dom0 = await createNetns('dom0');
    await lan.ip('link', 'add', 'lan0', 'type', 'veth', 'peer', 'name', nic, 'netns', dom0.name);
    await lan.ip('addr', 'add', '192.168.0.1/24', 'dev', 'lan0');
    await lan.ip('addr', 'add', '2001:db8::1/64', 'dev', 'lan0', 'nodad');
    await lan.ip('addr', 'add', '198.51.100.1/32', 'dev', 'lo');
    await lan.ip('link', 'set', 'lan0', 'up');
    // What /etc/sysctl.d sets for the host's interface: the host side must have it too.
    for (const [key, value] of Object.entries(NIC_SETTINGS)) {
      const r = await dom0.exec('sysctl', ['-q', '-w', `${key.replace('<nic>', nic)}=${value}`]);
      if (r.code !== 0) throw new Error(`sysctl ${key}: ${r.stderr}`);
    }
    await dom0.ip('addr', 'add', '192.168.0.2/24', 'dev', nic);
    await dom0.ip('addr', 'add', '192.168.0.3/24', 'dev', nic, ...(`${nic}:1`.length <= 15 ? ['label', `${nic}:1`] : []));
    await dom0.ip('addr', 'add', '2001:db8::2/64', 'dev', nic, 'nodad');
    await dom0.ip('link', 'set', nic, 'mtu', '1400', 'up');
    // Neighbour entries an operator set on the NIC: a static one for 192.168.0.77, which the LAN
    // has on lo and does not answer ARP for on lan0 (dom0 reaches it only through the entry), and
    // proxy entries (ARP and NDP) for addresses behind the host.
    await lan.ip('addr', 'add', '192.168.0.77/32', 'dev', 'lo');
    const arpIgnore = await lan.exec('sysctl', ['-q', '-w', 'net.ipv4.conf.lan0.arp_ignore=1']);
    if (arpIgnore.code !== 0) throw new Error(`sysctl arp_ignore: ${arpIgnore.stderr}`);
    const lanMac = (await lan.ipJson<{ address: string }[]>('link', 'show', 'lan0'))[0]!.address;
    await dom0.ip('neigh', 'add', '192.168.0.77', 'lladdr', lanMac, 'nud', 'permanent', 'dev', nic);
    await dom0.ip('neigh', 'add', 'proxy', '192.168.0.88', 'dev', nic);
    await dom0.ip('-6', 'neigh', 'add', 'proxy', '2001:db8::88', 'dev', nic);
    await dom0.ip('route', 'add', 'default', 'via', '192.168.0.1');
    await dom0.ip('-6', 'route', 'add', 'default', 'via', '2001:db8::1');
    await dom0.ip('route', 'add', '10.8.0.0/16', 'via', '192.168.0.1', 'src', '192.168.0.3');
    await dom0.ip('route', 'add', '10.9.0.0/16', 'via', '192.168.0.1', 'metric', '50', 'table', '100');
  } catch (e) {
    await destroy(dom0, lan);
    rmSync(stateDir, { recursive: true, force: true });
    throw e;
  }
  const d = dom0;
  return {
    lan,
    dom0: d,
    stateDir,
    async teardown() {
      await destroy(d, lan);
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

interface IpLink {
  ifname: string;
  address?: string;
  mtu: number;
  flags: string[];
  master?: string;
  link_type: string;
  linkinfo?: { info_kind?: string };
}
interface IpAddr {
  ifname: string;
  addr_info: { family: string; local: string; prefixlen: number; label?: string; broadcast?: string; scope: string; dynamic?: boolean; tentative?: boolean; nodad?: boolean; noprefixroute?: boolean }[];
}
type IpRoute = Record<string, unknown> & { dst: string };

/**
 * The namespace's network state as `ip -j` (not xennet's own netlink code) reports it, normalised
 * for comparison: links by name with MAC, MTU, flags, kind and master; every address; every route
 * in every table of both families; the static and proxy neighbour entries; every link's per-interface IP-stack settings (`sysctl -a`, the
 * keys the takeover carries).
 */
export async function snapshot(ns: Netns): Promise<{ links: unknown[]; addresses: unknown[]; routes: unknown[]; neighbours: string[]; settings: string[] }> {
  const links = (await ns.ipJson<IpLink[]>('-d', 'link', 'show'))
    .map((l) => ({
      name: l.ifname,
      mac: l.address,
      mtu: l.mtu,
      flags: l.flags.filter((f) => ['UP', 'NOARP', 'MULTICAST', 'BROADCAST'].includes(f)).sort(),
      kind: l.linkinfo?.info_kind ?? null,
      master: l.master ?? null,
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
  // IPv6 link-local addresses (and their routes) are the kernel's, derived from the MAC and
  // configured asynchronously after a link comes up: compared through the MAC, not read here.
  const kernelLinkLocal = (a: { family: string; scope: string }): boolean => a.family === 'inet6' && a.scope === 'link';
  const addresses = (await ns.ipJson<IpAddr[]>('addr', 'show'))
    .flatMap((l) =>
      l.addr_info.filter((a) => !kernelLinkLocal(a)).map((a) => ({ dev: l.ifname, family: a.family, local: a.local, prefixlen: a.prefixlen, label: a.label ?? null, broadcast: a.broadcast ?? null, scope: a.scope, nodad: !!a.nodad })),
    )
    .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  const routes: unknown[] = [];
  for (const family of ['-4', '-6']) {
    for (const r of await ns.ipJson<IpRoute[]>(family, 'route', 'show', 'table', 'all')) {
      if (family === '-6' && /^(fe80:|ff00::\/8)/.test(r.dst)) continue;
      const { expires: _e, flags, ...rest } = r as IpRoute & { expires?: unknown; flags?: string[] };
      routes.push({ family, ...rest, flags: (flags ?? []).filter((f) => f !== 'linkdown').sort() });
    }
  }
  routes.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  // The neighbour entries an operator sets (static, proxy); the kernel's learned ones come and go.
  const neighbours = [...(await ns.ipJson<Record<string, unknown>[]>('neigh', 'show', 'nud', 'permanent')), ...(await ns.ipJson<Record<string, unknown>[]>('neigh', 'show', 'proxy'))]
    .map((n) => JSON.stringify(n))
    .sort();
  const all = await ns.exec('sysctl', ['-a']);
  const settings = all.stdout
    .split('\n')
    .map((line) => /^net\.(ipv4|ipv6)\.conf\.([^.]+)\.([a-z0-9_]+) = (.*)$/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null && hostSideStack[m[1] as 'ipv4' | 'ipv6'].includes(m[3]!))
    .map((m) => `${m[1]} ${m[2]} ${m[3]} ${m[4]}`)
    .sort();
  return { links, addresses, routes, neighbours, settings };
}

/**
 * Waits until IPv6 address configuration has settled: every link that is up with carrier and
 * multicast has its link-local address, and no address is still tentative (DAD).
 */
export async function settleIpv6(ns: Netns, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const rows = await ns.ipJson<(IpAddr & { flags: string[] })[]>('addr', 'show');
    const pending = rows.some(
      (l) =>
        l.addr_info.some((a) => a.tentative) ||
        (l.flags.includes('UP') && l.flags.includes('LOWER_UP') && l.flags.includes('MULTICAST') && !l.flags.includes('LOOPBACK') &&
          !l.addr_info.some((a) => a.family === 'inet6' && a.scope === 'link')),
    );
    if (!pending) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Asserts that `ns`'s snapshot equals `expected`, reading it again every 100 ms for up to
 * `timeoutMs` while it differs: the kernel configures IPv6 on a link that came up on its own time,
 * after the program that brought it up has exited. No wait when it is equal at once.
 */
export async function assertSnapshotSettles(ns: Netns, expected: Awaited<ReturnType<typeof snapshot>>, message: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const now = await snapshot(ns);
    if (isDeepStrictEqual(now, expected)) return;
    if (Date.now() >= deadline) {
      assert.deepEqual(now, expected, message);
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
