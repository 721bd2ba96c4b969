/**
 * The live vifs of the host: bridge ports named vif<domid>.<devid> (or -emu), or renamed through a
 * xenstore `vifname`, with what xenstore says about them (domain name, mac, ip). Works without
 * xenstore (then names are unknown and anti-spoofing has only what the rule file says).
 */
import type { LinkState } from '../bridge/model.js';
import { parseIpList } from '../hooks/validate.js';
import { reasonOf } from '../sys/errors.js';
import type { XenstoreClient } from '../xenstore/client.js';
import type { Cidr, VifFacts } from './model.js';

interface BackendEntry {
  domid: number;
  devid: number;
  vifname?: string;
  mac?: string;
  ip?: string;
  domain?: string;
  hotplugStatus?: string;
}

export interface DiscoveredVif extends VifFacts {
  hotplugStatus?: string;
  link: LinkState;
}

async function readBackends(xs: XenstoreClient): Promise<BackendEntry[]> {
  const base = '/local/domain/0/backend/vif';
  const domids = (await xs.directory(base)).filter((d) => /^\d+$/.test(d));
  const perDomain = await Promise.all(
    domids.map(async (d) => {
      const [devids, domain] = await Promise.all([xs.directory(`${base}/${d}`), xs.read(`/local/domain/${d}/name`)]);
      return Promise.all(
        devids
          .filter((n) => /^\d+$/.test(n))
          .map(async (n) => {
            const p = `${base}/${d}/${n}`;
            const [vifname, mac, ip, hs] = await Promise.all([xs.read(`${p}/vifname`), xs.read(`${p}/mac`), xs.read(`${p}/ip`), xs.read(`${p}/hotplug-status`)]);
            const e: BackendEntry = { domid: Number(d), devid: Number(n) };
            if (vifname) e.vifname = vifname;
            if (mac) e.mac = mac.toLowerCase();
            if (ip) e.ip = ip;
            if (domain) e.domain = domain;
            if (hs !== undefined) e.hotplugStatus = hs;
            return e;
          }),
      );
    }),
  );
  return perDomain.flat();
}

export async function discoverVifs(links: LinkState[], xs: XenstoreClient | undefined): Promise<{ vifs: DiscoveredVif[]; warnings: string[] }> {
  const warnings: string[] = [];
  let entries: BackendEntry[] = [];
  if (xs) {
    try {
      entries = await readBackends(xs);
    } catch (e) {
      warnings.push(`cannot read xenstore (${reasonOf(e)}): domain names, MACs and addresses of guests are unknown`);
    }
  }
  const byName = new Map<string, BackendEntry>();
  for (const e of entries) {
    byName.set(`vif${e.domid}.${e.devid}`, e);
    byName.set(`vif${e.domid}.${e.devid}-emu`, e);
    if (e.vifname) {
      byName.set(e.vifname, e);
      byName.set(`${e.vifname}-emu`, e);
    }
  }
  const vifs: DiscoveredVif[] = [];
  for (const link of links) {
    if (link.master === null) continue;
    const m = /^vif(\d+)\.(\d+)(-emu)?$/.exec(link.name);
    const e = byName.get(link.name);
    if (!m && !e) continue;
    const domid = e?.domid ?? Number(m![1]);
    if (domid === 0) continue; // vif0.N is dom0's own netloop port
    const facts: DiscoveredVif = { name: link.name, bridge: link.master, domid, devid: e?.devid ?? Number(m![2]), ipv4: [], ipv6: [], link };
    if (e?.domain) facts.domain = e.domain;
    if (e?.mac) facts.mac = e.mac;
    if (e?.hotplugStatus !== undefined) facts.hotplugStatus = e.hotplugStatus;
    if (e?.ip) {
      try {
        for (const a of parseIpList(e.ip, `xenstore ip of ${link.name}`)) (a.family === 'ipv4' ? facts.ipv4 : facts.ipv6).push({ addr: a.address, len: a.prefixLen } satisfies Cidr);
      } catch (err) {
        warnings.push(`${link.name}: ${reasonOf(err)}; its addresses are ignored`);
      }
    }
    vifs.push(facts);
  }
  vifs.sort((a, b) => a.name.localeCompare(b.name));
  return { vifs, warnings };
}
