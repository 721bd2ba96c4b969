/** What status says about bridges, a takeover's ports and where guests are attached: from facts alone, no host. */
import assert from 'node:assert/strict';
import { guestPlacementProblems, layoutFindings, type BridgeFacts, type JournalFacts, type LinkFacts } from '../../src/status/layout-findings.js';
import { backendBridge } from '../../src/firewall/discover.js';
import type { LinkState } from '../../src/bridge/model.js';

const up = (master: string | null, kind: string | null = null): LinkFacts => ({ master, up: true, kind });
const down = (master: string | null): LinkFacts => ({ master, up: false, kind: null });
const spec = { bridge: 'xenbr0', netdev: 'eth0', pdev: 'peth0', vif0: 'vif0.0' };
const takeover = (phase: string): JournalFacts => ({ path: '/var/lib/xennet/takeover-xenbr0.json', journal: { phase, spec } });

function findings(o: { bridges: BridgeFacts[]; links: Record<string, LinkFacts>; guests?: string[]; journals?: JournalFacts[]; running?: number }): { problems: string[]; notes: string[] } {
  return layoutFindings({ bridges: o.bridges, links: new Map(Object.entries(o.links)), guestPorts: new Set(o.guests ?? []), journals: o.journals ?? [], takeoverRunning: () => o.running });
}

describe('status: bridges, a takeover\'s ports, where guests are (layout findings)', () => {
  const xenbr0 = (isUp: boolean, ports: string[], uplinks: string[]): BridgeFacts => ({ name: 'xenbr0', up: isUp, ports, uplinks });

  it('a healthy takeover with a guest: nothing to say', () => {
    const f = findings({ bridges: [xenbr0(true, ['peth0', 'vif0.0', 'vif1.0'], ['peth0', 'vif0.0'])], links: { xenbr0: up(null, 'bridge'), peth0: up('xenbr0'), 'vif0.0': up('xenbr0'), 'vif1.0': up('xenbr0') }, guests: ['vif1.0'], journals: [takeover('up')] });
    assert.deepEqual(f, { problems: [], notes: [] });
  });

  it('a bridge down with guests names them and how to bring it up; without guests or a takeover it is no problem', () => {
    const f = findings({ bridges: [xenbr0(false, ['vif1.0'], [])], links: { 'vif1.0': up('xenbr0') }, guests: ['vif1.0'] });
    assert.equal(f.problems.length, 1);
    assert.match(f.problems[0]!, /^bridge xenbr0 is down: its guest interface \(vif1\.0\) has no network.*`ip link set xenbr0 up`/);
    assert.deepEqual(findings({ bridges: [xenbr0(false, [], [])], links: {} }).problems, []);
    assert.match(findings({ bridges: [xenbr0(false, [], [])], links: {}, journals: [takeover('up')] }).problems.join(), /a guest started from now on has no network on it/);
  });

  it('the takeover\'s NIC off its bridge, and dom0\'s port down: advice that mends each as written', () => {
    const f = findings({ bridges: [xenbr0(true, ['vif0.0'], ['vif0.0'])], links: { peth0: down(null), 'vif0.0': down('xenbr0') }, journals: [takeover('up')] });
    assert.equal(f.problems.length, 2);
    assert.match(f.problems[0]!, /^peth0, the NIC xenbr0 took over, is on no bridge: .*`ip link set peth0 master xenbr0 up` puts it back$/);
    assert.match(f.problems[1]!, /^vif0\.0 is down, dom0's port of xenbr0: .*`ip link set vif0\.0 up` brings it up$/);
    const gone = findings({ bridges: [xenbr0(true, ['vif0.0'], ['vif0.0'])], links: { 'vif0.0': up('xenbr0') }, journals: [takeover('up')] });
    assert.match(gone.problems.join(), /^peth0, the NIC xenbr0 took over, is gone/);
  });

  it('another down port of a bridge with guests is a note, not a problem', () => {
    const f = findings({ bridges: [xenbr0(true, ['eth1', 'vif1.0'], ['eth1'])], links: { eth1: down('xenbr0'), 'vif1.0': up('xenbr0') }, guests: ['vif1.0'] });
    assert.deepEqual(f.problems, []);
    assert.match(f.notes.join(), /^eth1, a port of xenbr0 with guests on it, is down/);
  });

  it('a takeover cut short is a problem, one running now a note; its bridge gone, or none at all, is a problem', () => {
    assert.match(findings({ bridges: [xenbr0(true, [], [])], links: {}, journals: [takeover('starting')] }).problems.join(), /a start of xenbr0 \(taking over eth0\) was interrupted/);
    const running = findings({ bridges: [xenbr0(true, [], [])], links: {}, journals: [takeover('stopping')], running: 4242 });
    assert.deepEqual(running.problems, []);
    assert.match(running.notes.join(), /a stop of xenbr0 \(taking over eth0\) is running now \(pid 4242\)/);
    const gone = findings({ bridges: [], links: {}, journals: [takeover('up')] });
    assert.equal(gone.problems.length, 1, 'the bridge gone says it; "no bridge" is not said again');
    assert.match(gone.problems[0]!, /^bridge xenbr0 is gone, though the takeover of this boot made it/);
    assert.match(findings({ bridges: [], links: {} }).problems.join(), /^no bridge on this host/);
  });

  it('names are printed escaped', () => {
    const f = findings({ bridges: [{ name: 'br\u001b[2J', up: false, ports: ['vif1.0'], uplinks: [] }], links: {}, guests: ['vif1.0'] });
    assert.ok(!f.problems.join().includes('\u001b'), f.problems.join());
  });

  describe('a guest off its bridge, or on another than its backend names', () => {
    const link = (name: string, master: string | null): LinkState => ({ index: 5, name, kind: null, master, mac: 'fe:ff:ff:ff:ff:ff', mtu: 1500, up: true, arp: true, multicast: true, peerIndex: null });
    const links = new Map<string, LinkFacts>([['xenbr0', up(null, 'bridge')], ['xenbr1', up(null, 'bridge')]]);

    it('detached after its hook connected it: how to attach it again', () => {
      const p = guestPlacementProblems('vif1.0 (web)', { bridge: 'xenbr0', hotplugStatus: 'connected' }, { leaving: false, link: link('vif1.0', null) }, links, true);
      assert.deepEqual(p, ['vif1.0 (web): its hook finished (hotplug-status "connected"), but its interface is on no bridge, not on xenbr0: the guest has no network; `ip link set vif1.0 master xenbr0` attaches it again (its rules are in place)']);
      assert.deepEqual(guestPlacementProblems('vif1.0', { bridge: 'xenbr0', hotplugStatus: 'connected' }, { leaving: true, link: link('vif1.0', null) }, links, true), [], 'a guest leaving is not judged');
      assert.deepEqual(guestPlacementProblems('vif1.0', { bridge: 'xenbr0', hotplugStatus: 'connected' }, { leaving: false, link: link('vif1.0', null) }, links, false), [], 'without xenstore nothing is judged');
    });

    it('on another bridge than its backend names: moved there, or bridge= fixed; a node naming nothing fails its next start', () => {
      const moved = guestPlacementProblems('vif1.0', { bridge: 'xenbr1', hotplugStatus: 'connected' }, { leaving: false, link: link('vif1.0', 'xenbr1'), configuredBridge: backendBridge('xenbr0', links)! }, links, true);
      assert.equal(moved.length, 1);
      assert.match(moved[0]!, /is on bridge xenbr1, but its backend names xenbr0 .*`ip link set vif1\.0 master xenbr0` moves it there/);
      const missing = guestPlacementProblems('vif1.0', { bridge: 'xenbr1', hotplugStatus: 'connected' }, { leaving: false, link: link('vif1.0', 'xenbr1'), configuredBridge: backendBridge('xenbr7', links)! }, links, true);
      assert.match(missing.join(), /names xenbr7 .*which does not exist: its hook fails at the guest's next start/);
      const invalid = guestPlacementProblems('vif1.0', { bridge: 'xenbr1', hotplugStatus: 'connected' }, { leaving: false, link: link('vif1.0', 'xenbr1'), configuredBridge: backendBridge('a b', links)! }, links, true);
      assert.match(invalid.join(), /its backend's bridge node is no interface name \("a b"\)/);
    });
  });
});
