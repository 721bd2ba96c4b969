/**
 * (c) Xen's own vif-bridge (Debian's, iptables part re-enabled) and vif-xennet on the same host,
 * started concurrently for 8 guests each, sharing the host-wide hotplug lock
 * /var/run/xen-hotplug/iptables and the default xenstored socket.
 */
import type { SimGuest, SimHost } from '../../src/sim/host.js';
import { ended } from './lib/proc.js';
import { guestSpec, hook, hotplug, installedHost, links, noProblems, nftChains, rulesMentioning, secs, teardown, VIF_BRIDGE, VIF_XENNET } from './lib/world.js';

const PER_SIDE = 8;
const LIBXL_BUDGET_MS = 30_000;

describe('system: xennet as installed, side by side with Xen\'s vif-bridge', function () {
  this.timeout(60_000);
  let host: SimHost;
  const xen: SimGuest[] = [];
  const ours: SimGuest[] = [];

  before(async () => {
    host = await installedHost();
    for (let i = 0; i < PER_SIDE; i++) {
      const a = await host.addGuest(guestSpec(20 + i));
      host.xenstored.write(`${a.backendPath}/script`, VIF_BRIDGE);
      xen.push(a);
      ours.push(await host.addGuest(guestSpec(40 + i)));
    }
  });

  after(async () => {
    await teardown(host);
  });

  it(`${PER_SIDE} guests through vif-bridge and ${PER_SIDE} through vif-xennet, all at once: every hook exits 0 within ${LIBXL_BUDGET_MS / 1000} s, every guest connected and attached`, async () => {
    const started = [...xen.map((g) => ({ g, script: VIF_BRIDGE })), ...ours.map((g) => ({ g, script: VIF_XENNET }))];
    // Interleaved start, as a host booting many guests of both kinds would see it.
    const order = started.flatMap((_, i) => (i < PER_SIDE ? [started[i]!, started[i + PER_SIDE]!] : []));
    const results = await Promise.all(order.map(({ g, script }) => hook(host, g, 'online', { script, killAfterMs: 40_000 }).then((r) => ({ g, script, r }))));
    const rows = await links(host.dom0);
    const problems: string[] = [];
    for (const { g, script, r } of results) {
      const who = `${script.split('/').pop()} ${g.vif}`;
      if (r.code !== 0) problems.push(`${who}: ${ended(r)}`);
      else if (r.ms >= LIBXL_BUDGET_MS) problems.push(`${who}: took ${secs(r.ms)}`);
      const hp = hotplug(host, g);
      if (hp.status !== 'connected') problems.push(`${who}: hotplug-status ${JSON.stringify(hp.status)}${hp.error ? `, hotplug-error ${JSON.stringify(hp.error)}` : ''}`);
      const l = rows.find((x) => x.ifname === g.vif);
      if (l?.master !== 'xenbr0' || !l.flags.includes('UP')) problems.push(`${who}: master ${l?.master}, flags ${l?.flags.join(',')}`);
    }
    noProblems(problems, 'concurrent onlines');
  });

  it('both firewalls are in place: Xen\'s physdev rules for its guests, xennet\'s chains (nftables, its default) for its own', async () => {
    const problems: string[] = [];
    for (const g of xen) if ((await rulesMentioning(host, g.vif)).filter((l) => l.startsWith('iptables: -A FORWARD')).length === 0) problems.push(`no Xen FORWARD rule for ${g.vif}`);
    const chains = await nftChains(host);
    for (const g of ours) if (!chains.some((c) => c.includes(g.vif))) problems.push(`no XN- chain for ${g.vif}`);
    noProblems(problems, 'firewalls');
  });
});
