import assert from 'node:assert/strict';
import type { LinkState } from '../../src/bridge/model.js';
import { backendPathFromEnv, parseVifCall, type VifHookInput } from '../../src/hooks/vif-input.js';
import { planVifOffline, planVifOnline, resolveBridge, resolveVifConfig, type LinkView } from '../../src/hooks/vif-plan.js';
import { parseIpList } from '../../src/hooks/validate.js';
import { XennetError } from '../../src/sys/errors.js';

const libxlEnv = { vif: 'vif5.0', XENBUS_PATH: 'backend/vif/5/0', netdev: '', script: '/etc/xen/scripts/vif-xennet' };

function input(extra: Partial<VifHookInput> = {}): VifHookInput {
  return { command: 'online', typeIf: 'vif', device: 'vif5.0', backendPath: '/local/domain/0/backend/vif/5/0', domid: 5, devid: 0, vars: {}, ...extra };
}

function link(name: string, extra: Partial<LinkState> = {}): LinkState {
  return { index: 1, name, kind: null, master: null, mac: '52:54:00:00:00:01', mtu: 1500, up: false, arp: true, multicast: true, peerIndex: null, ...extra };
}

function view(...links: LinkState[]): LinkView {
  return { links: new Map(links.map((l) => [l.name, l])) };
}

describe('vif hook: argv, env and xenstore', () => {
  it('parses libxl and xend calls', () => {
    assert.deepEqual(parseVifCall(['online', 'type_if=vif'], libxlEnv), { kind: 'run', input: { ...input(), vars: {} } });
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
    assert.deepEqual(cfg.ips.map((a) => a.address), ['10.0.0.9', '2001:db8::9']);
  });
  for (const [what, argv, env, message] of [
    ['an unknown command', ['explode'], libxlEnv, /invalid command "explode"/],
    ['no XENBUS_PATH', ['online'], { vif: 'vif5.0' }, /XENBUS_PATH is not set/],
    ['a hostile vif name', ['online'], { ...libxlEnv, vif: 'vif5.0;rm -rf /' }, /not a valid interface name/],
    ['a path outside backend/vif', ['online'], { ...libxlEnv, XENBUS_PATH: 'backend/vbd/5/0' }, /is not backend\/vif/],
    ['an unknown type_if', ['online', 'type_if=wifi'], libxlEnv, /unknown interface type/],
  ] as [string, string[], NodeJS.ProcessEnv, RegExp][]) {
    it(`rejects ${what}`, () => {
      assert.throws(() => parseVifCall(argv, env), (e: unknown) => e instanceof XennetError && message.test(e.message));
    });
  }
  it('knows where to report even when the rest is malformed', () => {
    assert.equal(backendPathFromEnv({ XENBUS_PATH: 'backend/vif/3/1' }), '/local/domain/0/backend/vif/3/1');
    assert.equal(backendPathFromEnv({ XENBUS_PATH: '../../etc' }), undefined);
  });
  it('validates xenstore values', () => {
    for (const [nodes, message] of [
      [{ mac: 'ff:ff:ff:ff:ff:ff' }, /multicast MAC/],
      [{ mtu: '40' }, /outside 68-65535/],
      [{ ip: '10.0.0.1/33' }, /bad prefix length/],
      [{ vifname: 'x'.repeat(16) }, /not a valid interface name/],
    ] as [Record<string, string>, RegExp][]) {
      assert.throws(() => resolveVifConfig(input(), nodes), (e: unknown) => e instanceof XennetError && message.test(e.message), JSON.stringify(nodes));
    }
    assert.deepEqual(parseIpList('10.0.0.1, 2001:DB8::1/64', 'ip'), [
      { family: 'ipv4', address: '10.0.0.1', prefixLen: 32 },
      { family: 'ipv6', address: '2001:db8::1', prefixLen: 64 },
    ]);
  });
});

describe('vif hook: planning', () => {
  const br = link('xenbr0', { kind: 'bridge', mtu: 1400, up: true });
  it('resolves the bridge like vif-bridge', () => {
    const cfg = resolveVifConfig(input(), {});
    assert.equal(resolveBridge(cfg, { links: new Map(), firstBridge: 'br9' }), 'br9');
    assert.throws(() => resolveBridge(cfg, { links: new Map() }), /Could not find bridge, and none was specified/);
    const want = resolveVifConfig(input(), { bridge: 'xenbr1' });
    assert.equal(resolveBridge(want, view(link('eth1', { kind: 'bridge' }))), 'eth1');
    assert.throws(() => resolveBridge(want, view()), /Could not find bridge device xenbr1/);
    assert.throws(() => resolveBridge(want, view(link('xenbr1'))), /not a bridge/);
  });
  it('online: down, fe:ff MAC, flush, MTU of the bridge, attach, up', () => {
    const cfg = resolveVifConfig(input(), { bridge: 'xenbr0' });
    const plan = planVifOnline(cfg, view(br, link('vif5.0', { up: true })), [{ family: 'inet', link: 'vif5.0', local: '10.1.1.1', prefixLen: 24, scope: 0, flags: [] }]);
    assert.equal(plan.mtu, 1400);
    assert.deepEqual(plan.ops.map((o) => o.op), ['set-up', 'set-mac', 'delete-address', 'set-mtu', 'set-master', 'set-up']);
  });
  it('online again changes nothing but bringing it up', () => {
    const cfg = resolveVifConfig(input(), { bridge: 'xenbr0' });
    const plan = planVifOnline(cfg, view(br, link('vif5.0', { up: true, master: 'xenbr0', mac: 'fe:ff:ff:ff:ff:ff', mtu: 1400 })), []);
    assert.deepEqual(plan.ops.map((o) => o.op), ['set-up', 'set-up']);
  });
  it('renames to vifname, refuses a name in use, and accepts a rename already done', () => {
    const cfg = resolveVifConfig(input(), { bridge: 'xenbr0', vifname: 'web0' });
    assert.deepEqual(planVifOnline(cfg, view(br, link('vif5.0')), []).ops.slice(0, 1), [{ op: 'rename', from: 'vif5.0', to: 'web0' }]);
    assert.throws(() => planVifOnline(cfg, view(br, link('vif5.0'), link('web0')), []), /An interface with name web0 already exists/);
    const again = planVifOnline(cfg, view(br, link('web0', { master: 'xenbr0', mac: 'fe:ff:ff:ff:ff:ff', mtu: 1400 })), []);
    assert.ok(!again.ops.some((o) => o.op === 'rename'));
  });
  it('offline: down and detach; nothing for a vif that is gone', () => {
    assert.deepEqual(planVifOffline('vif5.0', link('vif5.0', { up: true, master: 'xenbr0' })).map((o) => o.op), ['set-up', 'set-master']);
    assert.deepEqual(planVifOffline('vif5.0', undefined), []);
  });
});
