/** Which links `apply` and `status` take for which guest: the mark first, never a vifname alone over it. */
import assert from 'node:assert/strict';
import type { LinkState } from '../../src/bridge/model.js';
import { discoverVifs } from '../../src/firewall/discover.js';
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
});
