import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compareHostSide } from '../../src/bridge/compare.js';
import type { HostState } from '../../src/bridge/model.js';
import { describeOp, inverseOf, invert, type LinkOp } from '../../src/bridge/ops.js';
import { checkTakeover, classifyLayout, planTakeover, resolveTakeoverSpec } from '../../src/bridge/takeover-plan.js';
import { XennetError } from '../../src/sys/errors.js';
import { applyToModel } from './lib/host-model.js';
import { addr, dom0, nic, route } from './lib/hosts.js';

const spec0 = resolveTakeoverSpec({}, { routes: [route('eth0', 'default', { gateway: '192.168.0.1' })] });

function refusal(fn: () => unknown): XennetError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof XennetError, `expected a XennetError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected a refusal');
}

const indexOfOp = (ops: LinkOp[], pred: (o: LinkOp) => boolean): number => {
  const i = ops.findIndex(pred);
  assert.ok(i >= 0, 'op not found');
  return i;
};

describe('takeover planner', () => {
  describe('resolveTakeoverSpec', () => {
    it('defaults to Xen 3.0 names for vifnum 0 when the default route leaves by eth0', () => {
      assert.deepEqual(spec0, { netdev: 'eth0', bridge: 'xenbr0', vifnum: 0, pdev: 'peth0', vdev: 'veth0', vif0: 'vif0.0' });
    });
    it('takes the NIC and vifnum N from a default route through eth<N>', () => {
      const s = resolveTakeoverSpec({}, { routes: [route('eth1', 'default', { gateway: '10.0.0.1' })] });
      assert.deepEqual([s.netdev, s.bridge, s.vdev, s.vif0, s.pdev], ['eth1', 'xenbr1', 'veth1', 'vif0.1', 'peth1']);
    });
    it('takes a predictable NIC name from the default route: enp3s0 -> penp3s0, veth0 -> enp3s0, xenbr0', () => {
      const s = resolveTakeoverSpec({}, { routes: [route('enp3s0', 'default', { gateway: '10.0.0.1' })] });
      assert.deepEqual(s, { netdev: 'enp3s0', bridge: 'xenbr0', vifnum: 0, pdev: 'penp3s0', vdev: 'veth0', vif0: 'vif0.0' });
      assert.equal(resolveTakeoverSpec({}, { routes: [route('ens18', 'default', { gateway: '10.0.0.1' })] }).bridge, 'xenbr0', 'digits of a non-eth name are no vifnum');
    });
    it('prefers the IPv4 default route of lowest metric in the main table, else IPv6', () => {
      const routes = [
        route('eth5', 'default', { gateway: '10.0.0.1', table: 100 }),
        route('ens4', 'default', { gateway: '2001:db8::1', metric: 1 }),
        route('enp2s0', 'default', { gateway: '10.0.0.1', metric: 200 }),
        route('enp1s0', 'default', { gateway: '10.0.0.1', metric: 100 }),
      ];
      assert.equal(resolveTakeoverSpec({}, { routes }).netdev, 'enp1s0');
      assert.equal(resolveTakeoverSpec({}, { routes: routes.filter((r) => r.family === 'inet6' || r.table !== 254) }).netdev, 'ens4');
    });
    it('without a default route and without --netdev: an error that asks for --netdev', () => {
      const e = refusal(() => resolveTakeoverSpec({}, { routes: [route('eth0', '10.8.0.0/16', { gateway: '192.168.0.1' })] }));
      assert.equal(e.code, 'refused');
      assert.match(e.message, /no default route \(IPv4 or IPv6\)/);
      assert.match(e.hint ?? '', /--netdev <NIC>/);
      const m = refusal(() => resolveTakeoverSpec({}, { routes: [route('eth0', 'default', { dev: null, nexthopDevs: ['eth0', 'eth1'] })] }));
      assert.match(m.message, /multipath route \(through eth0, eth1\)/);
      assert.doesNotThrow(() => resolveTakeoverSpec({ netdev: 'eth0' }, { routes: [] }));
    });
    it('refuses a NIC whose p<name> would exceed 15 characters, naming that name', () => {
      const nic15 = 'enx0123456789ab';
      assert.equal(nic15.length, 15);
      for (const args of [{}, { netdev: nic15 }]) {
        const e = refusal(() => resolveTakeoverSpec(args, { routes: [route(nic15, 'default', { gateway: '10.0.0.1' })] }));
        assert.equal(e.code, 'refused');
        assert.equal(e.message, 'the NIC enx0123456789ab would be renamed penx0123456789ab, which has 16 characters; the kernel allows 15 (IFNAMSIZ); nothing was changed');
      }
      assert.equal(resolveTakeoverSpec({}, { routes: [route('enx0123456789a', 'default', { gateway: '10.0.0.1' })] }).pdev, 'penx0123456789a', '14 characters fit');
      // stop and status only look: such a NIC was never taken over, which they say instead of refusing.
      assert.equal(resolveTakeoverSpec({}, { routes: [route(nic15, 'default', { gateway: '10.0.0.1' })] }, [], 'inspect').netdev, nic15);
    });
    it('honours explicit arguments (xend netdev= keeps vifnum 0)', () => {
      const s = resolveTakeoverSpec({ netdev: 'ens3', bridge: 'br-guests', vifnum: '2' }, { routes: [] });
      assert.deepEqual([s.netdev, s.bridge, s.pdev, s.vdev, s.vif0], ['ens3', 'br-guests', 'pens3', 'veth2', 'vif0.2']);
      const x = resolveTakeoverSpec({ netdev: 'eth1' }, { routes: [route('eth0', 'default', { gateway: '10.0.0.1' })] });
      assert.deepEqual([x.netdev, x.bridge, x.pdev, x.vdev], ['eth1', 'xenbr0', 'peth1', 'veth0']);
    });
    it('without arguments, follows a takeover recorded in this boot', () => {
      const recorded = { netdev: 'enp3s0', bridge: 'xenbr7', vifnum: 7, pdev: 'penp3s0', vdev: 'veth7', vif0: 'vif0.7' };
      assert.deepEqual(resolveTakeoverSpec({}, { routes: [route('enp3s0', 'default', { gateway: '10.0.0.1' })] }, [recorded]), recorded, 'its netdev has the default route');
      assert.deepEqual(resolveTakeoverSpec({}, { routes: [] }, [recorded]), recorded, 'no default route (a start killed after it moved the routes): the only journal');
      assert.equal(resolveTakeoverSpec({}, { routes: [route('eth1', 'default', { gateway: '10.0.0.1' })] }, [recorded]).netdev, 'eth1', 'another NIC has the default route');
      assert.equal(resolveTakeoverSpec({ vifnum: 0 }, { routes: [route('enp3s0', 'default', { gateway: '10.0.0.1' })] }, [recorded]).bridge, 'xenbr0', 'explicit arguments win');
    });
    it('rejects bad names and numbers with a usage error', () => {
      const none = { routes: [route('eth0', 'default', { gateway: '10.0.0.1' })] };
      assert.equal(refusal(() => resolveTakeoverSpec({ vifnum: 'x1' }, none)).code, 'usage');
      assert.equal(refusal(() => resolveTakeoverSpec({ bridge: 'a/b' }, none)).code, 'usage');
      assert.equal(refusal(() => resolveTakeoverSpec({ netdev: 'averyveryverylongname' }, none)).code, 'usage');
      assert.match(refusal(() => resolveTakeoverSpec({ bridge: 'eth0' }, none)).message, /names collide/);
    });
  });

  describe('checkTakeover refuses unsafe starting points', () => {
    const cases: [string, (h: HostState) => void, RegExp][] = [
      ['missing NIC', (h) => (h.links = h.links.filter((l) => l.name !== 'eth0')), /eth0 does not exist/],
      ['NIC is a bridge', (h) => (h.links.find((l) => l.name === 'eth0')!.kind = 'bridge'), /eth0 is a bridge/],
      ['NIC is a port', (h) => h.links.push(nic('br7', 9, { kind: 'bridge' })) && (h.links.find((l) => l.name === 'eth0')!.master = 'br7'), /already a port of br7/],
      ['foreign peth0', (h) => h.links.push(nic('peth0', 9)), /peth0 already exists/],
      ['bridge name is not a bridge', (h) => h.links.push(nic('xenbr0', 9)), /xenbr0 exists and is not a bridge/],
      ['foreign veth0', (h) => h.links.push(nic('veth0', 9, { kind: 'veth' })), /veth0 already exists and is not one end/],
      ['foreign vif0.0', (h) => h.links.push(nic('vif0.0', 9, { kind: 'veth' })), /vif0.0 already exists and is not one end/],
      ['multipath route through the NIC', (h) => h.routes.push(route('eth0', '10.7.0.0/16', { dev: null, nexthopDevs: ['eth0', 'eth1'] })), /multipath route through eth0/],
      ['a macvlan on the NIC', (h) => h.links.push(nic('mv0', 9, { kind: 'macvlan', lower: 2 })), /mv0 \(macvlan\) is stacked on eth0, which then cannot be a bridge port/],
    ];
    for (const [what, mutate, message] of cases) {
      it(what, () => {
        const h = dom0();
        mutate(h);
        const e = refusal(() => checkTakeover(spec0, h));
        assert.equal(e.code, 'refused');
        assert.match(e.message, message);
        assert.match(e.message, /nothing was changed/);
      });
    }
    it('accepts an existing bridge and an existing free veth pair', () => {
      const h = dom0();
      h.links.push(nic('xenbr0', 10, { kind: 'bridge', up: false }));
      h.links.push(nic('veth0', 11, { kind: 'veth', peerIndex: 12, up: false }), nic('vif0.0', 12, { kind: 'veth', peerIndex: 11, up: false }));
      assert.doesNotThrow(() => checkTakeover(spec0, h));
      const ops = planTakeover(spec0, h);
      assert.ok(!ops.some((o) => o.op === 'create-bridge' || o.op === 'create-veth'), 'reuses them');
    });
  });

  describe('planTakeover', () => {
    const ops = planTakeover(spec0, dom0());

    it('carries configured addresses and non-kernel routes only', () => {
      const added = ops.filter((o) => o.op === 'add-address').map((o) => (o.op === 'add-address' ? o.address.local : ''));
      assert.deepEqual(added, ['192.168.0.2', '192.168.0.3', '2001:db8::2'], 'no link-local, primaries first');
      const routes = ops.filter((o) => o.op === 'add-route').map((o) => (o.op === 'add-route' ? `${o.route.dst}@${o.route.table}` : ''));
      assert.deepEqual(routes, ['default@254', '10.8.0.0/16@254', '10.9.0.0/16@100', 'default@254']);
    });

    it('removes routes, then secondaries before primaries, then takes the NIC down, then renames', () => {
      const delRoute = indexOfOp(ops, (o) => o.op === 'delete-route');
      const delSecondary = indexOfOp(ops, (o) => o.op === 'delete-address' && o.address.local === '192.168.0.3');
      const delPrimary = indexOfOp(ops, (o) => o.op === 'delete-address' && o.address.local === '192.168.0.2');
      const down = indexOfOp(ops, (o) => o.op === 'set-up' && o.link === 'eth0' && !o.up);
      const rename1 = indexOfOp(ops, (o) => o.op === 'rename' && o.from === 'eth0');
      const rename2 = indexOfOp(ops, (o) => o.op === 'rename' && o.from === 'veth0');
      assert.ok(delRoute < delSecondary && delSecondary < delPrimary && delPrimary < down && down < rename1 && rename1 < rename2);
    });

    it('gives the new eth0 the NIC MAC and MTU and quiets both ports', () => {
      assert.ok(ops.some((o) => o.op === 'set-mac' && o.link === 'veth0' && o.mac === '52:54:00:12:34:56'));
      assert.ok(ops.some((o) => o.op === 'set-mtu' && o.link === 'veth0' && o.mtu === 1400));
      assert.ok(ops.some((o) => o.op === 'set-mtu' && o.link === 'vif0.0' && o.mtu === 1400));
      for (const port of ['peth0', 'vif0.0']) {
        assert.ok(ops.some((o) => o.op === 'set-mac' && o.link === port && o.mac === 'fe:ff:ff:ff:ff:ff'), `${port} MAC`);
        assert.ok(ops.some((o) => o.op === 'set-flags' && o.link === port && !o.arp && !o.multicast), `${port} flags`);
      }
    });

    it('runs on the kernel model to the netloop layout with the host side intact', () => {
      const before = dom0();
      const after = applyToModel(before, ops);
      assert.equal(classifyLayout(spec0, after).kind, 'taken-over');
      assert.deepEqual(compareHostSide(before, after, 'eth0'), []);
      assert.equal(after.links.find((l) => l.name === 'peth0')?.mac, 'fe:ff:ff:ff:ff:ff');
    });

    it('is undone exactly by its inverse on the kernel model', () => {
      const before = dom0();
      const restored = applyToModel(applyToModel(before, ops), inverseOf(ops));
      assert.deepEqual(compareHostSide(before, restored, 'eth0'), []);
      assert.deepEqual(restored.links.map((l) => l.name).sort(), ['eth0', 'lo']);
      assert.equal(classifyLayout(spec0, restored).kind, 'original');
    });

    it("moves the NIC's static and proxy neighbour entries to the host side (the kernel drops them when the NIC goes down), and back", () => {
      const taken = indexOfOp(ops, (o) => o.op === 'delete-neigh' && o.neigh.dst === '192.168.0.1' && o.neigh.link === 'eth0');
      assert.ok(taken < indexOfOp(ops, (o) => o.op === 'set-up' && o.link === 'eth0' && !o.up), 'taken off before the NIC goes down');
      const added = ops.filter((o) => o.op === 'add-neigh').map((o) => (o.op === 'add-neigh' ? `${o.neigh.link} ${o.neigh.dst} ${o.neigh.proxy}` : ''));
      assert.deepEqual(added, ['eth0 192.168.0.1 false', 'eth0 2001:db8::60 true']);
      assert.ok(indexOfOp(ops, (o) => o.op === 'add-neigh') > indexOfOp(ops, (o) => o.op === 'set-up' && o.link === 'eth0' && o.up), 'added once the host side is up');
      const before = dom0();
      const after = applyToModel(before, ops);
      assert.deepEqual(after.neighbours?.map((n) => `${n.link} ${n.dst}`).sort(), ['eth0 192.168.0.1', 'eth0 2001:db8::60'], 'on the host side, none on peth0');
      const sorted = (h: HostState): string[] => (h.neighbours ?? []).map((n) => JSON.stringify(n)).sort();
      assert.deepEqual(sorted(applyToModel(after, inverseOf(ops))), sorted(before), 'back on the NIC after the inverse');
    });

    it("gives the host side the NIC's IP-stack settings while it is down, disable_ipv6 first; only integers, only what differs", () => {
      const stacks = {
        nic: { ipv4: { arp_ignore: '1', rp_filter: '2', forwarding: '0', odd: '1 2' }, ipv6: { accept_ra: '2', disable_ipv6: '1', autoconf: '0' } },
        hostSide: { ipv4: { arp_ignore: '0', rp_filter: '0', forwarding: '0', odd: '0' }, ipv6: { accept_ra: '1', disable_ipv6: '0' } },
      };
      const withStacks = planTakeover(spec0, dom0(), stacks);
      const set = withStacks.filter((o) => o.op === 'set-sysctl');
      assert.deepEqual(set, [
        { op: 'set-sysctl', link: 'veth0', family: 'ipv4', key: 'arp_ignore', value: '1', was: '0' },
        { op: 'set-sysctl', link: 'veth0', family: 'ipv4', key: 'rp_filter', value: '2', was: '0' },
        { op: 'set-sysctl', link: 'veth0', family: 'ipv6', key: 'disable_ipv6', value: '1', was: '0' },
        { op: 'set-sysctl', link: 'veth0', family: 'ipv6', key: 'accept_ra', value: '2', was: '1' },
      ]);
      const first = withStacks.indexOf(set[0]!);
      const last = withStacks.indexOf(set.at(-1)!);
      assert.ok(indexOfOp(withStacks, (o) => o.op === 'set-mtu' && o.link === 'veth0') < first, 'after the MTU');
      assert.ok(last < indexOfOp(withStacks, (o) => o.op === 'rename' && o.from === 'veth0'), 'before the rename');
      assert.ok(last < indexOfOp(withStacks, (o) => o.op === 'set-up' && o.link === 'eth0' && o.up), 'before it comes up');
      assert.equal(describeOp(set[3]!), 'set net.ipv6.conf.veth0.accept_ra to 2');
      assert.deepEqual(invert(set[3]!), { op: 'set-sysctl', link: 'veth0', family: 'ipv6', key: 'accept_ra', value: '1', was: '2' });
      assert.deepEqual(withStacks.filter((o) => o.op !== 'set-sysctl'), ops, 'nothing else changes');
      const before = dom0();
      assert.deepEqual(compareHostSide(before, applyToModel(applyToModel(before, withStacks), inverseOf(withStacks)), 'eth0'), []);
      assert.ok(!ops.some((o) => o.op === 'set-sysctl'), 'none when the settings were not read');
    });

    it('adds routes without a gateway before the routes through a gateway they reach (a /32 address, the gateway a host route), and removes them after', () => {
      const h = dom0();
      h.addresses = [addr('eth0', '192.168.0.2', 32)];
      h.routes = [route('eth0', 'default', { gateway: '192.168.0.1' }), route('eth0', '192.168.0.1/32', { scope: 253 })];
      const plan = planTakeover(spec0, h);
      const added = plan.filter((o) => o.op === 'add-route').map((o) => (o.op === 'add-route' ? o.route.dst : ''));
      assert.deepEqual(added, ['192.168.0.1/32', 'default']);
      const removed = plan.filter((o) => o.op === 'delete-route').map((o) => (o.op === 'delete-route' ? o.route.dst : ''));
      assert.deepEqual(removed, ['default', '192.168.0.1/32']);
      const after = applyToModel(h, plan); // the model refuses a gateway it cannot reach, as the kernel does
      assert.deepEqual(compareHostSide(h, applyToModel(after, inverseOf(plan)), 'eth0'), []);
    });

    it('renames the NIC and the veth end only when they are the links the plan means (ifindex, veth peer)', () => {
      const renames = ops.filter((o) => o.op === 'rename');
      assert.deepEqual(renames, [
        { op: 'rename', from: 'eth0', to: 'peth0', index: 2 },
        { op: 'rename', from: 'veth0', to: 'eth0', pairedWith: 'vif0.0' },
      ]);
      assert.deepEqual(renames.map(invert), [
        { op: 'rename', from: 'peth0', to: 'eth0', index: 2 },
        { op: 'rename', from: 'eth0', to: 'veth0', pairedWith: 'vif0.0' },
      ]);
    });

    it('describes every step in words', () => {
      for (const o of ops) assert.doesNotMatch(describeOp(o), /undefined|\[object/);
    });
  });

  describe('properties', () => {
    const ipv4 = fc.tuple(fc.integer({ min: 1, max: 223 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1, max: 254 })).map((p) => p.join('.'));
    const hostArb = fc
      .record({
        v4: fc.uniqueArray(ipv4, { minLength: 0, maxLength: 4 }),
        v6: fc.uniqueArray(fc.integer({ min: 1, max: 0xfffe }).map((n) => `2001:db8::${n.toString(16)}`), { maxLength: 3 }),
        routes: fc.uniqueArray(fc.record({ net: fc.integer({ min: 1, max: 200 }), table: fc.constantFrom(254, 100, 200), metric: fc.option(fc.integer({ min: 1, max: 999 }), { nil: undefined }) }), {
          maxLength: 5,
          selector: (r) => `${r.net}/${r.table}/${r.metric}`,
        }),
        mtu: fc.integer({ min: 1280, max: 9000 }),
        up: fc.boolean(),
        existingBridge: fc.boolean(),
        otherLinks: fc.integer({ min: 0, max: 3 }),
        // The hosters' layout: a /32 address, the gateway reached through a host route (listed after the default route, as a dump may list them).
        hostGateway: fc.boolean(),
      })
      .map((p): HostState => {
        const h: HostState = { links: [nic('lo', 1), nic('eth0', 2, { mtu: p.mtu, up: p.up })], addresses: [], routes: [] };
        for (let i = 0; i < p.otherLinks; i++) h.links.push(nic(`eth${i + 1}`, 3 + i));
        if (p.existingBridge) h.links.push(nic('xenbr0', 20, { kind: 'bridge', up: false }));
        p.v4.forEach((a, i) => h.addresses.push(addr('eth0', a, 24, i > 0 ? { flags: ['permanent', 'secondary'] } : {})));
        p.v6.forEach((a) => h.addresses.push(addr('eth0', a, 64)));
        if (p.up) for (const r of p.routes) h.routes.push(route('eth0', `10.${r.net}.0.0/16`, { table: r.table, ...(r.metric === undefined ? {} : { metric: r.metric }) }));
        if (p.up && p.hostGateway) {
          h.addresses.push(addr('eth0', '198.51.100.7', 32));
          h.routes.push(route('eth0', 'default', { gateway: '198.51.100.1', table: 100 }), route('eth0', '198.51.100.1/32', { scope: 253 }));
        }
        return h;
      });

    it('plan then inverse restores any host; the plan reaches the netloop layout', () => {
      fc.assert(
        fc.property(hostArb, (host) => {
          const ops = planTakeover(spec0, host);
          const after = applyToModel(host, ops);
          assert.equal(classifyLayout(spec0, after).kind, 'taken-over');
          assert.deepEqual(compareHostSide(host, after, 'eth0'), []);
          const restored = applyToModel(after, inverseOf(ops));
          assert.deepEqual(compareHostSide(host, restored, 'eth0'), []);
          assert.deepEqual(
            restored.links.map((l) => [l.name, l.mac, l.mtu, l.up, l.arp, l.multicast, l.master]).sort(),
            host.links.map((l) => [l.name, l.mac, l.mtu, l.up, l.arp, l.multicast, l.master]).sort(),
          );
        }),
        { numRuns: 300 },
      );
    });

    it('undoing any prefix of the plan restores the host (what a failed or killed start relies on)', () => {
      fc.assert(
        fc.property(hostArb, fc.nat(), (host, cut) => {
          const ops = planTakeover(spec0, host);
          const k = cut % (ops.length + 1);
          const restored = applyToModel(applyToModel(host, ops.slice(0, k)), inverseOf(ops.slice(0, k)));
          assert.deepEqual(compareHostSide(host, restored, 'eth0'), []);
          assert.deepEqual(restored.links.map((l) => l.name).sort(), host.links.map((l) => l.name).sort());
        }),
        { numRuns: 300 },
      );
    });

    it('invert is an involution and the plan is deterministic', () => {
      const ops = planTakeover(spec0, dom0());
      for (const o of ops) assert.deepEqual(invert(invert(o)), o);
      assert.deepEqual(planTakeover(spec0, dom0()), ops);
    });
  });
});
