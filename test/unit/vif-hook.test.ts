import assert from 'node:assert/strict';
import type { LinkState } from '../../src/bridge/model.js';
import { backendPathFromEnv, parseVifCall, type VifHookInput } from '../../src/hooks/vif-input.js';
import { offlineTarget, ownerMark, planVifOffline, planVifOnline, resolveBridge, resolveVifConfig, type LinkView } from '../../src/hooks/vif-plan.js';
import { XennetError } from '../../src/sys/errors.js';
import { ifn } from './lib/values.js';

const libxlEnv = { vif: 'vif5.0', XENBUS_PATH: 'backend/vif/5/0', netdev: '', script: '/etc/xen/scripts/vif-xennet' };

function input(extra: Partial<VifHookInput> = {}): VifHookInput {
  return { command: 'online', typeIf: 'vif', device: ifn('vif5.0'), envName: ifn('vif5.0'), backendPath: '/local/domain/0/backend/vif/5/0', domid: 5, devid: 0, vars: {}, ...extra };
}

function link(name: string, extra: Partial<LinkState> = {}): LinkState {
  return { index: 1, name, kind: null, master: null, mac: '52:54:00:00:00:01', mtu: 1500, up: false, arp: true, multicast: true, peerIndex: null, ...extra };
}

function view(...links: LinkState[]): LinkView {
  return { links: new Map(links.map((l) => [l.name, l])) };
}

const fails = (fn: () => unknown, message: RegExp): void => {
  assert.throws(fn, (e: unknown) => e instanceof XennetError && message.test(e.message), String(message));
};

describe('vif hook: argv, env and xenstore', () => {
  it('parses libxl and xend calls; the device comes from XENBUS_PATH', () => {
    assert.deepEqual(parseVifCall(['online', 'type_if=vif'], libxlEnv), { kind: 'run', input: input() });
    const xend = parseVifCall(['online', 'bridge=xenbr1'], { vif: 'vif5.0', XENBUS_PATH: '/local/domain/0/backend/vif/5/0' });
    assert.equal(xend.kind === 'run' && xend.input.vars.bridge, 'xenbr1');
    const tap = parseVifCall(['add', 'type_if=tap'], { INTERFACE: 'vif5.1-emu' });
    assert.ok(tap.kind === 'run' && tap.input.backendPath === '/local/domain/0/backend/vif/5/1' && tap.input.device === 'vif5.1-emu');
  });
  it('ignores the combinations Xen ignores', () => {
    assert.equal(parseVifCall(['add', 'type_if=vif'], libxlEnv).kind, 'ignore');
    assert.equal(parseVifCall(['online', 'type_if=tap'], { INTERFACE: 'vif5.0-emu' }).kind, 'ignore');
  });
  it('applies env < argv for bridge and ip', () => {
    const r = parseVifCall(['online', 'bridge=xenbr2'], { ...libxlEnv, bridge: 'xenbr9', ip: '10.0.0.1' });
    assert.ok(r.kind === 'run');
    assert.deepEqual(r.input.vars, { bridge: 'xenbr2', ip: '10.0.0.1' });
  });
  it('applies argv < xenstore', () => {
    const cfg = resolveVifConfig(input({ vars: { bridge: 'xenbr2', ip: '10.0.0.1' } }), { bridge: 'xenbr3', ip: '10.0.0.9 2001:db8::9' });
    assert.equal(cfg.bridge, 'xenbr3');
    assert.deepEqual(cfg.ips.map((a) => `${a.addr}/${a.len}`), ['10.0.0.9/32', '2001:db8::9/128']);
  });
  for (const [what, argv, env, message] of [
    ['an unknown command', ['explode'], libxlEnv, /invalid command "explode"/],
    ['no XENBUS_PATH', ['online'], { vif: 'vif5.0' }, /XENBUS_PATH is not set/],
    ['a hostile vif name', ['online'], { ...libxlEnv, vif: 'vif5.0;rm -rf /' }, /not a valid interface name/],
    ['a path outside backend/vif', ['online'], { ...libxlEnv, XENBUS_PATH: 'backend/vbd/5/0' }, /is not backend\/vif/],
    ['a backend of domain 0', ['online'], { ...libxlEnv, XENBUS_PATH: 'backend/vif/0/0' }, /is not backend\/vif/],
    ['a domid with a leading zero', ['online'], { ...libxlEnv, XENBUS_PATH: 'backend/vif/05/0' }, /is not backend\/vif/],
    ['an unknown type_if', ['online', 'type_if=wifi'], libxlEnv, /unknown interface type/],
  ] as [string, string[], NodeJS.ProcessEnv, RegExp][]) {
    it(`rejects ${what}`, () => fails(() => parseVifCall(argv, env), message));
  }
  it('knows where to report even when the rest is malformed', () => {
    assert.equal(backendPathFromEnv({ XENBUS_PATH: 'backend/vif/3/1' }), '/local/domain/0/backend/vif/3/1');
    assert.equal(backendPathFromEnv({ XENBUS_PATH: '../../etc' }), undefined);
  });
  it('refuses hostile and mistaken xenstore values, naming the node and the value', () => {
    for (const [nodes, message] of [
      [{ mac: 'ff:ff:ff:ff:ff:ff' }, /backend\/vif\/5\/0\/mac "ff:ff:ff:ff:ff:ff" is a broadcast address/],
      [{ mac: '01:00:5e:00:00:01' }, /is a multicast address/],
      [{ mac: '00:00:00:00:00:00' }, /all-zero/],
      [{ mac: '00:16:3e:00:00:01\n-A FORWARD -j ACCEPT' }, /"00:16:3e:00:00:01\\u000a-A FORWARD -j ACCEPT" is not a MAC address/],
      [{ mtu: '40' }, /outside 68-65535/],
      [{ mtu: '15x0' }, /"15x0" is not a number/],
      [{ ip: '10.0.0.1/33' }, /bad prefix length/],
      [{ ip: '0.0.0.0/0' }, /is \/0/],
      [{ ip: '::/0' }, /is \/0/],
      [{ ip: 'fe80::1%eth0' }, /zone ids/],
      [{ ip: '10.1' }, /four decimal parts/],
      [{ ip: '167772161' }, /four decimal parts/],
      [{ ip: '0xa.0.0.1' }, /four decimal parts/],
      [{ ip: '010.0.0.1' }, /four decimal parts/],
      [{ ip: '10.0.0.5/24' }, /host bits set; write the network 10.0.0.0\/24 or the single address 10.0.0.5/],
      [{ ip: '224.0.0.1' }, /multicast/],
      [{ vifname: 'x'.repeat(16) }, /longer than 15 characters/],
      [{ vifname: 'a;reboot' }, /not a valid interface name/],
      [{ vifname: 'web\n0' }, /"web\\u000a0" is not a valid interface name/],
      [{ vifname: 'vif7.0' }, /names the Xen interface of another domain/],
      [{ vifname: 'vif0.0' }, /names the Xen interface of another domain/],
      [{ vifname: 'lo' }, /loopback/],
      [{ bridge: 'xen br0' }, /not a valid interface name/],
    ] as [Record<string, string>, RegExp][]) {
      fails(() => resolveVifConfig(input(), nodes), message);
    }
  });
  it('canonicalises addresses to what iptables-save prints', () => {
    const cfg = resolveVifConfig(input(), { ip: '10.0.0.1, 2001:DB8:0:0:0:0:0:1/128 2001:db8:0:1::/64', mac: '00:16:3E:AA:bb:01' });
    assert.deepEqual(cfg.ips.map((a) => `${a.addr}/${a.len}`), ['10.0.0.1/32', '2001:db8::1/128', '2001:db8:0:1::/64']);
    assert.equal(cfg.mac, '00:16:3e:aa:bb:01');
  });
  it('takes the vif variable only when it is the device or its vifname (xend passes the current name)', () => {
    assert.equal(resolveVifConfig(input({ envName: ifn('web0') }), { vifname: 'web0' }).name, 'web0');
    fails(() => resolveVifConfig(input({ envName: ifn('eth0') }), {}), /neither this guest's device vif5.0 nor its vifname/);
  });
});

describe('vif hook: planning', () => {
  const br = link('xenbr0', { kind: 'bridge', mtu: 1400, up: true });
  const mark = ownerMark(5, 0);
  it('resolves the bridge like vif-bridge', () => {
    const cfg = resolveVifConfig(input(), {});
    assert.equal(resolveBridge(cfg, { links: new Map(), firstBridge: 'br9' }), 'br9');
    assert.throws(() => resolveBridge(cfg, { links: new Map() }), /Could not find bridge, and none was specified/);
    const want = resolveVifConfig(input(), { bridge: 'xenbr1' });
    assert.equal(resolveBridge(want, view(link('eth1', { kind: 'bridge' }))), 'eth1');
    assert.throws(() => resolveBridge(want, view()), /Could not find bridge device xenbr1/);
    assert.throws(() => resolveBridge(want, view(link('xenbr1'))), /not a bridge/);
  });
  it('online: mark, down, fe:ff MAC, flush, MTU of the bridge, attach, up', () => {
    const cfg = resolveVifConfig(input(), { bridge: 'xenbr0' });
    const plan = planVifOnline(cfg, view(br, link('vif5.0', { up: true })), [{ family: 'inet', link: 'vif5.0', local: '10.1.1.1', prefixLen: 24, scope: 0, flags: [] }]);
    assert.equal(plan.mtu, 1400);
    assert.deepEqual(plan.ops.map((o) => o.op), ['set-alias', 'set-up', 'set-mac', 'delete-address', 'set-mtu', 'set-master', 'set-up']);
  });
  it('an mtu below the bridge\'s is logged, below 1280 refused; a bridge without no_linklocal_learn gets it', () => {
    const low = resolveVifConfig(input(), { bridge: 'xenbr0', mtu: '1000' });
    assert.throws(() => planVifOnline(low, view(br, link('vif5.0')), []), /mtu 1000 is below 1280/);
    const lower = resolveVifConfig(input(), { bridge: 'xenbr0', mtu: '1300' });
    const plan = planVifOnline(lower, view(br, link('vif5.0')), []);
    assert.match(plan.warnings.join(), /mtu 1300 is below bridge xenbr0's 1400/);
    assert.equal(plan.hardenBridge, true, 'the bridge settings say nothing of no_linklocal_learn');
    const hardened = link('xenbr0', { kind: 'bridge', mtu: 1400, up: true, bridge: { stpState: 0, forwardDelay: 0, nfCallIptables: true, nfCallIp6tables: true, noLinkLocalLearn: true } });
    assert.equal(planVifOnline(resolveVifConfig(input(), { bridge: 'xenbr0' }), view(hardened, link('vif5.0')), []).hardenBridge, false);
  });
  it('online again changes nothing but bringing it up', () => {
    const cfg = resolveVifConfig(input(), { bridge: 'xenbr0' });
    const plan = planVifOnline(cfg, view(br, link('vif5.0', { up: true, master: 'xenbr0', mac: 'fe:ff:ff:ff:ff:ff', mtu: 1400, alias: mark })), []);
    assert.deepEqual(plan.ops.map((o) => o.op), ['set-up', 'set-up']);
  });
  it('renames to vifname (marked first), refuses a name in use, accepts only its own rename already done', () => {
    const cfg = resolveVifConfig(input(), { bridge: 'xenbr0', vifname: 'web0' });
    assert.deepEqual(planVifOnline(cfg, view(br, link('vif5.0')), []).ops.slice(0, 2), [{ op: 'set-alias', link: 'vif5.0', alias: mark, was: '' }, { op: 'rename', from: 'vif5.0', to: 'web0' }]);
    assert.throws(() => planVifOnline(cfg, view(br, link('vif5.0'), link('web0')), []), /An interface with name web0 already exists/);
    const again = planVifOnline(cfg, view(br, link('web0', { master: 'xenbr0', mac: 'fe:ff:ff:ff:ff:ff', mtu: 1400, alias: mark })), []);
    assert.ok(!again.ops.some((o) => o.op === 'rename'));
  });
  it('never takes over a link that is not provably this guest\'s (dom0 NIC, bridge, another guest)', () => {
    const eth0 = link('eth0', { up: true, mac: '52:54:00:12:34:56' });
    const cfg = resolveVifConfig(input(), { bridge: 'xenbr0', vifname: 'eth0' });
    assert.throws(() => planVifOnline(cfg, view(br, eth0), []), /refusing to touch eth0/);
    const other = resolveVifConfig(input(), { bridge: 'xenbr0', vifname: 'web7' });
    assert.throws(() => planVifOnline(other, view(br, link('web7', { alias: ownerMark(7, 0) })), []), /belongs to another guest \(vif7.0\)/);
    const toBridge = resolveVifConfig(input(), { bridge: 'xenbr0', vifname: 'xenbr0' });
    assert.throws(() => planVifOnline(toBridge, view(br), []), /refusing to touch xenbr0|xenbr0 is a bridge/);
  });
  it('offline acts on the marked link or the device, never on a foreign link under the vifname', () => {
    const cfg = resolveVifConfig(input(), { vifname: 'eth0' });
    const eth0 = link('eth0', { up: true });
    const dev = link('vif5.0', { up: true, master: 'xenbr0' });
    assert.equal(offlineTarget(cfg, eth0, dev).link?.name, 'vif5.0');
    assert.equal(offlineTarget(cfg, eth0, undefined).link, undefined);
    assert.match(offlineTarget(cfg, eth0, undefined).refused[0] ?? '', /eth0 is not this guest's interface/);
    const web = resolveVifConfig(input(), { vifname: 'web0' });
    assert.equal(offlineTarget(web, link('web0', { alias: mark }), undefined).link?.name, 'web0');
  });
  it('offline: down and detach; nothing for a vif that is gone', () => {
    assert.deepEqual(planVifOffline('vif5.0', link('vif5.0', { up: true, master: 'xenbr0' })).map((o) => o.op), ['set-up', 'set-master']);
    assert.deepEqual(planVifOffline('vif5.0', undefined), []);
  });
});
