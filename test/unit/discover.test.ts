/** Which links `apply` and `status` take for which guest: the mark first, never a vifname alone over it. */
import assert from 'node:assert/strict';
import type { LinkState } from '../../src/bridge/model.js';
import { backendsByDomain, discoverVifs, type RecordedVif } from '../../src/firewall/discover.js';
import type { XenstoreClient } from '../../src/xenstore/client.js';

const link = (name: string, extra: Partial<LinkState> = {}): LinkState => ({ index: 1, name, kind: null, master: 'xenbr0', mac: 'fe:ff:ff:ff:ff:ff', mtu: 1500, up: true, arp: true, multicast: true, peerIndex: null, ...extra });

/** A xenstore with these nodes (path -> value); directories are derived. */
function store(nodes: Record<string, string>): XenstoreClient {
  const children = (p: string): string[] => [...new Set(Object.keys(nodes).filter((k) => k.startsWith(`${p}/`)).map((k) => k.slice(p.length + 1).split('/')[0]!))];
  return { directory: async (p: string) => children(p), read: async (p: string) => nodes[p] } as unknown as XenstoreClient;
}

const backend = (d: number, n: number, extra: Record<string, string>): Record<string, string> => Object.fromEntries(Object.entries({ mac: `00:16:3e:00:00:${d}`, ...extra }).map(([k, v]) => [`/local/domain/0/backend/vif/${d}/${n}/${k}`, v]));

describe('firewall: which link is whose guest interface', () => {
  it('a vifname naming dom0\'s uplink or another guest\'s marked port is not believed while the backend\'s own device exists', async () => {
    const xs = store({ ...backend(48, 0, { vifname: 'db48' }), ...backend(49, 1, { vifname: 'peth0' }), ...backend(49, 2, { vifname: 'db48' }) });
    const links = [link('peth0'), link('db48', { alias: 'xennet:vif48.0' }), link('vif49.1', { master: null }), link('vif49.2', { master: null })];
    const r = await discoverVifs(links, xs);
    assert.deepEqual(r.vifs.map((v) => [v.name, v.domid, v.devid, v.mac]), [['db48', 48, 0, '00:16:3e:00:00:48']]);
    assert.match(r.warnings.join('\n'), /backend 49\/1 names peth0 as its vifname, but its own device vif49\.1 exists/);
  });

  it('a vifname alone is not believed once the backend\'s device is gone either (dom0\'s NIC has no mark, as the hooks hold); a mark of another guest on a Xen name is refused', async () => {
    const xs = store({ ...backend(5, 0, { vifname: 'web5' }), ...backend(6, 0, {}), ...backend(9, 0, { vifname: 'peth0' }), ...backend(10, 0, { vifname: 'db10' }) });
    const r = await discoverVifs([link('web5'), link('peth0'), link('vif6.0', { alias: 'xennet:vif7.0' }), link('db10', { alias: 'xennet:vif10.0' })], xs);
    assert.deepEqual(r.vifs.map((v) => [v.name, v.domid]), [['db10', 10]], 'only the marked rename');
    assert.match(r.warnings.join('\n'), /vif6\.0 carries the mark of vif7\.0/);
    assert.match(r.warnings.join('\n'), /backend 9\/0 names peth0 as its vifname, but peth0 does not carry xennet's mark \(xennet:vif9\.0\): it is not treated as its interface/);
    assert.match(r.warnings.join('\n'), /backend 5\/0 names web5 as its vifname, but web5 does not carry xennet's mark/);
  });

  it('a guest with a vifname whose rules the daemon prepared is live under the vifname while xenstore says so and the index made them for its backend and MAC; a failed or finished hook, another owner, another MAC, or a link of that name are not', async () => {
    const recorded: ReadonlyMap<string, RecordedVif> = new Map([['web4', { bridge: 'xenbr0', owner: { domid: 4, devid: 0 }, macs: ['00:16:3e:00:00:04'] }]]);
    const one = async (over: Record<string, string>, links = [link('vif4.0', { master: null })], rec: ReadonlyMap<string, RecordedVif> = recorded) => discoverVifs(links, store(backend(4, 0, { mac: '00:16:3E:00:00:04', vifname: 'web4', 'hotplug-status': '', ...over })), rec);
    const r = await one({});
    assert.deepEqual(r.vifs.map((v) => [v.name, v.link.name, v.bridge, v.domid, v.devid, v.mac, v.hotplugStatus]), [['web4', 'vif4.0', 'xenbr0', 4, 0, '00:16:3e:00:00:04', '']]);
    assert.deepEqual(r.pending, []);
    for (const [why, over, links, rec] of [
      ['its hook failed', { 'hotplug-status': 'error' }, undefined, undefined],
      ['its hook finished', { 'hotplug-status': 'connected' }, undefined, undefined],
      ['another MAC', { mac: '00:16:3e:00:00:99' }, undefined, undefined],
      ['no MAC', { mac: '' }, undefined, undefined],
      ['another vifname', { vifname: 'web44' }, undefined, undefined],
      ['another owner', {}, undefined, new Map<string, RecordedVif>([['web4', { bridge: 'xenbr0', owner: { domid: 4, devid: 1 }, macs: [] }]])],
      ['no owner recorded', {}, undefined, new Map<string, RecordedVif>([['web4', { bridge: 'xenbr0', macs: [] }]])],
      ['nothing recorded', {}, undefined, new Map<string, RecordedVif>()],
    ] as [string, Record<string, string>, LinkState[] | undefined, ReadonlyMap<string, RecordedVif> | undefined][]) {
      const got = await one(over, links, rec);
      assert.ok(!got.vifs.some((v) => v.name === 'web4'), why);
    }
    // A link of that name exists: it is judged by its own mark, and vif4.0 is not taken for it.
    const named = await one({}, [link('vif4.0', { master: null }), link('web4', { master: null })]);
    assert.ok(!named.vifs.some((v) => v.link.name === 'vif4.0'), 'vif4.0 is not web4 while a link is named web4');
    // With nothing recorded, the backend waits for its hook with its link on no bridge.
    assert.deepEqual((await one({}, undefined, new Map())).pending.map((p) => [p.domid, p.devid, p.link]), [[4, 0, 'vif4.0']]);
  });

  it('a backend whose hook failed or has not finished is found by its domain\'s whole name, up to the 128 characters a name may have', async () => {
    const long = `${'g'.repeat(100)}\u0007`;
    const xs = store({ ...backend(7, 0, { 'hotplug-status': 'error' }), ...backend(8, 0, {}), '/local/domain/7/name': long, '/local/domain/8/name': long });
    const r = await discoverVifs([link('vif8.0', { master: null })], xs);
    assert.deepEqual(r.failed.map((f) => [f.domid, f.domain]), [[7, `${'g'.repeat(100)}\\u0007`]]);
    assert.deepEqual(backendsByDomain(r.failed, long).map((f) => f.domid), [7]);
    assert.deepEqual(backendsByDomain(r.pending, long).map((p) => [p.domid, p.link]), [[8, 'vif8.0']]);
    // Connected, its interface on no bridge, nothing recorded (the firewall off): taken off its
    // bridge, when xennet's hook put it there and the backend is still connected (xenbus state
    // 4; libxl moves it to closing before the offline); a routed guest's (vif-route) never was.
    const xen = { script: '/etc/xen/scripts/vif-xennet', state: '4', 'hotplug-status': 'connected' };
    const off = await discoverVifs(['vif12.0', 'vif13.0', 'vif14.0', 'vif15.0'].map((n) => link(n, { master: null })), store({ ...backend(12, 0, xen), ...backend(13, 0, { ...xen, script: '/etc/xen/scripts/vif-route' }), ...backend(14, 0, { ...xen, state: '5' }), ...backend(15, 0, { ...xen, script: 'vif-xennet' }) }));
    assert.deepEqual(off.pending.map((p) => [p.domid, p.link, p.hotplugStatus, p.bridge]), [[12, 'vif12.0', 'connected', undefined], [15, 'vif15.0', 'connected', undefined]]);
    // Its bridge, from its backend; its paravirtual interface off the bridge while the emulated one
    // is on it; once per backend though two of its links are off (its Xen name and its mark).
    const pv = await discoverVifs([link('vif16.0', { master: null }), link('vif16.0-emu'), link('vif17.0', { master: null }), link('web17', { master: null, alias: 'xennet:vif17.0' })], store({ ...backend(16, 0, { ...xen, bridge: 'xenbr1' }), ...backend(17, 0, xen) }));
    assert.deepEqual(pv.pending.map((p) => [p.domid, p.link, p.bridge]), [[16, 'vif16.0', { node: 'xenbr1', state: 'missing', bridge: 'xenbr1' }], [17, 'vif17.0', undefined]]);
    // A link whose Xen name and mark disagree waits for neither backend; a marked rename does.
    const both = await discoverVifs([link('vif9.0', { master: null, alias: 'xennet:vif10.0' }), link('web10', { master: null, alias: 'xennet:vif10.0' })], store({ ...backend(9, 0, {}), ...backend(10, 0, { vifname: 'web10' }) }));
    assert.deepEqual(both.pending.map((p) => [p.domid, p.link]), [[10, 'web10']]);
  });

  it('a port of another bridge than its backend names names that one, and so does one whose node is no interface name; on it, on ethN for xenbrN (the 3.2 layout, whether or not a xenbrN came since), without a node, or on no Linux bridge, none', async () => {
    const br = (name: string): LinkState => link(name, { kind: 'bridge', master: null });
    const links = [
      link('vif20.0', { master: 'brx' }),
      link('vif21.0'),
      link('vif22.0', { master: 'brx' }),
      link('vif23.0', { master: 'eth1' }),
      link('vif24.0', { master: 'brx' }),
      link('vif25.0', { master: 'eth0' }),
      link('vif26.0', { master: 'ovs-system' }),
      link('vif27.0', { master: 'brx' }),
      link('vif28.0', { master: 'brx' }),
      link('vif29.0', { master: 'brx' }),
      br('xenbr0'),
      br('brx'),
      br('eth1'),
      br('eth0'),
      link('ovs-system', { kind: 'openvswitch', master: null }),
      link('peth0', { master: 'eth0' }),
    ];
    const nodes = { 20: 'xenbr0', 21: 'xenbr0', 23: 'xenbr1', 24: 'xenbr9', 25: 'xenbr0', 26: 'xenbr0', 27: 'peth0', 28: 'xenbr1', 29: 'br x' } as Record<number, string>;
    const r = await discoverVifs(links, store(Object.assign({}, ...Array.from({ length: 10 }, (_, k) => 20 + k).map((d) => backend(d, 0, nodes[d] !== undefined ? { bridge: nodes[d] } : {})))));
    assert.deepEqual(
      r.vifs.map((v) => [v.name, v.configuredBridge]),
      [
        ['vif20.0', { node: 'xenbr0', state: 'bridge', bridge: 'xenbr0' }],
        ['vif21.0', undefined],
        ['vif22.0', undefined],
        ['vif23.0', undefined],
        ['vif24.0', { node: 'xenbr9', state: 'missing', bridge: 'xenbr9' }],
        ['vif25.0', undefined],
        ['vif26.0', undefined],
        ['vif27.0', { node: 'peth0', state: 'not-a-bridge', bridge: 'peth0' }],
        ['vif28.0', { node: 'xenbr1', state: 'bridge', bridge: 'eth1' }],
        ['vif29.0', { node: 'br x', state: 'invalid' }],
      ],
    );
  });

});
