/** `xennet status GUEST`: the policy explained (agreeing with what the firewall resolves), the record of hook calls, the view's judgement. */
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { run } from '../../src/sys/exec.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keyLines, loadPolicy, parsePolicy } from '../../src/config/load.js';
import { recordPolicy } from '../../src/config/policy-cache.js';
import { policyInForce } from '../../src/cli/guest-status.js';
import type { PlanResult } from '../../src/firewall/cli-plan.js';
import { JOURNAL_ROTATE_BYTES, journalPath, readHookCalls, recordHookCall, type HookRecord } from '../../src/hooks/hook-journal.js';
import { resolveVif } from '../../src/firewall/resolve.js';
import { parseCidr, type IfName, type Mac } from '../../src/net/index.js';
import { explainPolicy, type GuestFacts } from '../../src/status/guest-policy.js';
import { callOf, guestVifs, guestView } from '../../src/status/guest-view.js';
import { renderGuestView } from '../../src/status/guest-render.js';
import type { HostStatus, VifStatus } from '../../src/status/host-status.js';
import type { PendingBackend } from '../../src/firewall/discover.js';
import { XennetError } from '../../src/sys/errors.js';

const FILE = [
  'version: 1', //                         1
  'defaults:', //                          2
  '  inbound: drop', //                    3
  '  antispoof:', //                       4
  '    ipv6: false', //                    5
  '  allow_ethertypes: [0x88cc]', //       6
  'guests:', //                            7
  '  web01:', //                           8
  '    inbound: accept', //                9
  '    isolation: true', //               10
  '    antispoof: false', //              11
  '    interfaces:', //                   12
  '      - devid: 1', //                  13
  '        ipv4: [10.0.0.5]', //          14
  '  db01:', //                           15
  '    ipv4: [192.168.0.7]', //           16
  '    allow_out:', //                    17
  '      - proto: udp', //                18
  '        ports: [53]', //               19
  '        to: [192.168.0.1]', //         20
  '      - proto: tcp', //                 21
  '        ports: [443]', //              22
  '',
].join('\n');

const facts = (over: Partial<GuestFacts>): GuestFacts => ({ policyName: null, devid: 0, mac: '00:16:3e:00:00:01', addresses: [], addressSource: 'declared', ...over });

describe('status GUEST', function () {
  describe('the policy explained', function () {
    const policy = parsePolicy(FILE, 'x.yaml');
    const lines = keyLines(FILE);
    const setting = (e: ReturnType<typeof explainPolicy>, k: string): { value: string; from: string } => {
      const s = e.settings.find((x) => x.setting === k);
      assert.ok(s, `no setting ${k}`);
      return { value: s.value, from: s.from };
    };

    it('says where each setting comes from: the guest\'s line, the defaults\' line, or the built-in default', function () {
      const e = explainPolicy(policy, lines, facts({ policyName: 'web01', devid: 1, addresses: ['10.0.0.5/32'] }));
      assert.equal(e.guest, 'web01');
      assert.equal(e.line, 8);
      assert.deepEqual(e.settings.find((x) => x.setting === 'inbound'), { setting: 'inbound', value: 'accept', origin: 'guest', path: 'guests.web01.inbound', line: 9, from: 'web01 line 9' });
      assert.deepEqual(setting(e, 'inbound'), { value: 'accept', from: 'web01 line 9' });
      assert.deepEqual(setting(e, 'outbound'), { value: 'accept', from: 'built-in' });
      assert.deepEqual(setting(e, 'isolation'), { value: 'yes', from: 'web01 line 10' });
      // `antispoof: false` in the guest's entry covers every family, over the defaults' ipv6.
      assert.deepEqual(setting(e, 'antispoof.ipv6'), { value: 'no', from: 'web01 line 11' });
      assert.deepEqual(setting(e, 'allow_ethertypes'), { value: '0x88cc', from: 'defaults line 6' });
      assert.deepEqual(setting(e, 'addresses'), { value: '10.0.0.5/32', from: 'web01 line 14' });
      assert.deepEqual(setting(e, 'allow_in'), { value: 'none', from: '-' });
    });

    it('a guest with no entry: the defaults, then built-in; its addresses from xenstore', function () {
      const e = explainPolicy(policy, lines, facts({ policyName: 'other', addresses: ['192.168.0.9/32'] }));
      assert.equal(e.guest, undefined);
      assert.deepEqual(setting(e, 'inbound'), { value: 'drop', from: 'defaults line 3' });
      assert.deepEqual(setting(e, 'antispoof.ipv6'), { value: 'no', from: 'defaults line 5' });
      assert.deepEqual(setting(e, 'antispoof.ipv4'), { value: 'yes', from: 'built-in' });
      assert.equal(setting(e, 'addresses').from, 'xenstore ip');
      const db = explainPolicy(policy, lines, facts({ policyName: 'db01', addresses: ['192.168.0.7/32'] }));
      assert.deepEqual(setting(db, 'allow_out[0]'), { value: 'udp port 53 to 192.168.0.1/32', from: 'db01 line 18' });
      assert.equal(setting(db, 'addresses').from, 'db01 line 16');
      assert.deepEqual(setting(db, 'allow_out[1]'), { value: 'tcp port 443 to anywhere', from: 'db01 line 21' }, 'each list item its own line');
      assert.equal(setting(explainPolicy(policy, lines, facts({ addressSource: 'learned' })), 'addresses').value, 'learned (DHCP, DHCPv6, DAD)');
    });

    it('names the interface resolve.ts takes: by devid before MAC', function () {
      const text = 'version: 1\nguests:\n  web01:\n    interfaces:\n      - mac: 00:16:3e:00:00:01\n        ipv4: [10.0.0.1]\n      - devid: 1\n        ipv4: [10.0.0.2]\n';
      const e = explainPolicy(parsePolicy(text, 'x.yaml'), keyLines(text), facts({ policyName: 'web01', devid: 1, addresses: ['10.0.0.2/32'] }));
      assert.deepEqual(setting(e, 'addresses'), { value: '10.0.0.2/32', from: 'web01 line 8' });
    });

    it('says what the firewall resolves, for every guest of the file and one it does not name', function () {
      for (const name of ['web01', 'db01', 'nobody']) {
        for (const devid of [0, 1]) {
          const r = resolveVif(policy, { name: 'vif5.0' as IfName, bridge: 'xenbr0' as IfName, domain: name as never, domid: 5, devid, mac: '00:16:3e:00:00:01' as Mac, ipv4: [parseCidr('192.168.0.50')], ipv6: [] } as never);
          const e = explainPolicy(policy, lines, facts({ policyName: name, devid }));
          const v = (k: string): string => setting(e, k).value;
          assert.equal(v('inbound').split(' ')[0], r.inbound, `${name} inbound`);
          assert.equal(v('outbound').split(' ')[0], r.outbound, `${name} outbound`);
          for (const f of ['mac', 'arp', 'ipv4', 'ipv6'] as const) assert.equal(v(`antispoof.${f}`), r.antispoof[f] ? 'yes' : 'no', `${name} antispoof.${f}`);
          assert.equal(v('isolation'), r.isolation ? 'yes' : 'no');
          assert.equal(v('dhcp_server'), r.dhcpServer ? 'yes' : 'no');
          assert.equal(v('router_advertisements'), r.routerAdvertisements ? 'yes' : 'no');
          assert.equal(v('log_drops'), r.logDrops ? 'yes' : 'no');
          assert.equal(v('identity_guard'), r.identityGuard ? 'yes' : 'no');
          assert.equal(e.settings.filter((s) => s.setting.startsWith('allow_in[')).length, r.allowIn.length);
          assert.equal(e.settings.filter((s) => s.setting.startsWith('allow_out[')).length, r.allowOut.length);
        }
      }
    });
  });

  describe('the record of hook calls', function () {
    let dir: string;
    let env: NodeJS.ProcessEnv;
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'xnt-journal-'));
      env = { XENNET_STATE_DIR: dir };
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));
    const rec = (i: number, over: Partial<HookRecord> = {}): HookRecord => ({ at: new Date(1_800_000_000_000 + i * 1000).toISOString(), command: 'online', vif: `vif${i % 3}.0`, domid: i % 3, devid: 0, ms: 50, via: 'daemon', ok: true, message: `call ${i}`, ...over });

    it('keeps the last calls of an interface, oldest first, skipping lines that are not records', function () {
      for (let i = 0; i < 30; i++) recordHookCall(env, rec(i));
      appendFileSync(journalPath(env), 'not json\n{"at": 5}\n');
      recordHookCall(env, rec(31, { ok: false, message: 'x'.repeat(5000) }));
      const got = readHookCalls(env, (r) => r.vif === 'vif1.0', 4);
      assert.deepEqual(got.map((r) => r.message.slice(0, 7)), ['call 22', 'call 25', 'call 28', 'xxxxxxx']);
      assert.equal(got[3]!.message.length, 400, 'a long message is cut');
    });

    it('is moved aside past 1 MiB, so that both files together stay under 2 MiB, and the calls before it are still read', function () {
      const big = 'y'.repeat(300);
      let i = 0;
      while (!existsSync(`${journalPath(env)}.1`)) recordHookCall(env, rec(i++, { message: big }));
      assert.ok(statSync(`${journalPath(env)}.1`).size > JOURNAL_ROTATE_BYTES);
      recordHookCall(env, rec(i, { vif: 'vif9.0', message: 'after' }));
      assert.ok(statSync(journalPath(env)).size < 1000);
      assert.equal(readHookCalls(env, () => true, 2)[1]!.message, 'after');
      assert.equal(readHookCalls(env, () => true, 1e9).length, i + 1);
    });

    it('a link or a FIFO at its place is neither followed nor waited on', async function () {
      writeFileSync(join(dir, 'target'), 'x\n');
      symlinkSync(join(dir, 'target'), journalPath(env));
      recordHookCall(env, rec(1));
      assert.equal(readFileSync(join(dir, 'target'), 'utf8'), 'x\n', 'not written through the link');
      assert.deepEqual(readHookCalls(env, () => true), []);
      rmSync(journalPath(env));
      assert.equal((await run('mkfifo', [journalPath(env)])).code, 0);
      recordHookCall(env, rec(2));
      assert.deepEqual(readHookCalls(env, () => true), [], 'returns at once');
    });

    it('a state directory that cannot be written loses the record, never the call', function () {
      writeFileSync(join(dir, 'file'), '');
      assert.doesNotThrow(() => recordHookCall({ XENNET_STATE_DIR: join(dir, 'file') }, rec(1)));
      assert.deepEqual(readHookCalls({ XENNET_STATE_DIR: join(dir, 'file') }, () => true), []);
      assert.equal(readFileSync(join(dir, 'file'), 'utf8'), '');
    });
  });

  describe('the view', function () {
    const vif = (name: string, over: Partial<VifStatus> = {}): VifStatus => ({
      name, domain: 'web01', domid: 5, devid: 0, mac: null, addresses: [], mtu: 1500, up: true, bridge: 'xenbr0', hotplugStatus: 'connected', firewall: 'in-sync',
      drops: { packets: 0, bytes: 0, reasons: {} }, policy: null, policyName: 'web01', policySource: 'name', claims: { mac: [], ipv4: [], ipv6: [], dropped: { packets: 0, bytes: 0 } }, addressSource: 'declared', learned: [], ...over,
    });
    const status = (vifs: VifStatus[], problems: string[] = []): HostStatus => ({ ok: problems.length === 0, problems, notes: [], backend: null, bridgeNetfilter: {}, rules: { file: 'x', state: 'valid' }, xenstore: 'x', bridges: [], vifs, staleChains: [], failedBackends: [], pendingBackends: [], installed: true });

    it('a guest whose hook failed or has not finished, with no interface on a bridge, is named as such by domain name or id, not as unknown', function () {
      const s = { ...status([vif('vif5.0')]), failedBackends: [{ domid: 9, devid: 0, domain: 'db02', error: 'Could not find bridge device xenbr5' }] };
      // By domain name or id, and by the Xen name of its interface.
      for (const q of ['db02', '9', 'vif9.0']) {
        assert.throws(() => guestVifs(s, q), (e: unknown) => e instanceof XennetError && e.code === 'not-found' && e.message === `${q} has no interface on a bridge: the hook of backend 9/0 (db02) failed (hotplug-error: "Could not find bridge device xenbr5")` && /xl network-detach 9 0/.test(e.hint ?? ''));
      }
      assert.throws(() => guestVifs(s, 'db03'), (e: unknown) => e instanceof XennetError && /nor is a domain or domain id/.test(e.message));
      const waiting = { ...status([vif('vif5.0')]), pendingBackends: [{ domid: 11, devid: 0, domain: 'db04', link: 'web11', hotplugStatus: '' }] };
      // ... and by the link status names for it (a hook stopped after its rename).
      for (const q of ['db04', '11', 'vif11.0', 'web11']) {
        assert.throws(() => guestVifs(waiting, q), (e: unknown) => e instanceof XennetError && e.code === 'not-found' && e.message === `${q} has no interface on a bridge yet: the hook of backend 11/0 (db04) has not finished (its interface web11 waits, on no bridge)`);
      }
    });

    it('a domain with one backend failed and another waiting has each named, with its own error and repair', function () {
      const s = {
        ...status([vif('vif5.0')]),
        failedBackends: [{ domid: 10, devid: 0, domain: 'ten', error: 'Could not find bridge device xenbr5' }],
        pendingBackends: [{ domid: 10, devid: 1, domain: 'ten', link: 'vif10.1', hotplugStatus: '' }],
      };
      for (const q of ['ten', '10']) {
        assert.throws(
          () => guestVifs(s, q),
          (e: unknown) =>
            e instanceof XennetError &&
            e.message === `${q} has no interface on a bridge: the hook of backend 10/1 (ten) has not finished (its interface vif10.1 waits, on no bridge); the hook of backend 10/0 (ten) failed (hotplug-error: "Could not find bridge device xenbr5")` &&
            /see \/var\/log\/xen\/xen-hotplug\.log/.test(e.hint ?? '') &&
            /xl network-detach 10 0/.test(e.hint ?? ''),
        );
      }
      assert.throws(() => guestVifs(s, 'vif10.1'), (e: unknown) => e instanceof XennetError && e.message === 'vif10.1 has no interface on a bridge yet: the hook of backend 10/1 (ten) has not finished (its interface vif10.1 waits, on no bridge)');
      // Taken off its bridge after its hook (nothing recorded it), and found by its vifname.
      const off = { ...status([]), pendingBackends: [{ domid: 12, devid: 0, domain: 'twelve', link: 'web12', hotplugStatus: 'connected', vifname: 'web12', bridge: { node: 'xenbr0' as IfName, state: 'bridge' as const, bridge: 'xenbr0' as IfName } }], failedBackends: [{ domid: 13, devid: 0, domain: 'thirteen', error: null, vifname: 'web13' }] };
      assert.throws(() => guestVifs(off, 'web12'), (e: unknown) => e instanceof XennetError && e.message === 'web12 has no interface on a bridge: backend 12/0 (twelve) is connected, but its interface web12 was taken off its bridge' && /ip link set web12 master xenbr0/.test(e.hint ?? ''));
      // The hint attaches it to its bridge when that is there, says when it is gone, and names no
      // bridge the backend does not name, or names but the hook could not use.
      const hint = (bridge: PendingBackend['bridge']): string => {
        try {
          guestVifs({ ...off, pendingBackends: [{ ...off.pendingBackends[0]!, bridge }] }, 'web12');
        } catch (e) {
          return e instanceof XennetError ? (e.hint ?? '') : '';
        }
        return '';
      };
      const xenbr0 = 'xenbr0' as IfName;
      assert.match(hint({ node: xenbr0, state: 'bridge', bridge: xenbr0 }), /^`ip link set web12 master xenbr0` attaches it again;/);
      assert.match(hint({ node: xenbr0, state: 'bridge', bridge: 'eth0' as IfName }), /^`ip link set web12 master eth0` attaches it again;/);
      assert.match(hint({ node: xenbr0, state: 'missing', bridge: xenbr0 }), /^its bridge xenbr0 is gone \(once it is back, `ip link set web12 master xenbr0` attaches it\);/);
      assert.match(hint(undefined), /^its backend names no bridge: attach it to the bridge its hook used \(`ip link set web12 master <bridge>`\);/);
      assert.match(hint({ node: 'peth0' as IfName, state: 'not-a-bridge', bridge: 'peth0' as IfName }), /^its backend names peth0, which is not a bridge: attach it to the bridge its hook used \(`ip link set web12 master <bridge>`\), and fix bridge= in its vif configuration;/);
      assert.match(hint({ node: 'xen\\u001bbr0', state: 'invalid' }), /^its backend's bridge node is no interface name \("xen\\u001bbr0"\): attach it to the bridge its hook used/);
      assert.throws(() => guestVifs(off, 'web13'), (e: unknown) => e instanceof XennetError && e.message === 'web13 has no interface on a bridge: the hook of backend 13/0 (thirteen) failed' && /xl network-attach 13` with its vif spec/.test(e.hint ?? ''));
      // An interface's name before a domain's: one guest's vifname that is another's domain name.
      const two = { ...status([]), failedBackends: [{ domid: 8, devid: 0, domain: 'eight', error: null, vifname: 'gamma' }, { domid: 9, devid: 0, domain: 'gamma', error: null }] };
      assert.throws(() => guestVifs(two, 'gamma'), (e: unknown) => e instanceof XennetError && e.message === 'gamma has no interface on a bridge: the hook of backend 8/0 (eight) failed');
      // ... across the lists: a detached interface named web is not merged with the failed backend
      // of a domain named web, nor passed over for a live guest of domain web.
      const across = { ...status([vif('vif5.0', { domain: 'web', policyName: 'web' })]), pendingBackends: [{ domid: 14, devid: 0, domain: 'fourteen', link: 'web', hotplugStatus: 'connected', vifname: 'web', bridge: { node: 'xenbr0' as IfName, state: 'bridge' as const, bridge: 'xenbr0' as IfName } }], failedBackends: [{ domid: 15, devid: 0, domain: 'web', error: null }] };
      assert.throws(() => guestVifs(across, 'web'), (e: unknown) => e instanceof XennetError && e.message === 'web has no interface on a bridge: backend 14/0 (fourteen) is connected, but its interface web was taken off its bridge');
      assert.throws(() => guestVifs({ ...across, vifs: [] }, 'web'), (e: unknown) => e instanceof XennetError && e.message === 'web has no interface on a bridge: backend 14/0 (fourteen) is connected, but its interface web was taken off its bridge');
      assert.deepEqual(guestVifs({ ...across, pendingBackends: [] }, 'web').map((v) => v.name), ['vif5.0'], 'the live guest of domain web, its failed backend in its view');
    });

    it('finds a guest by vif name, domain name or domain id; an unknown one is an error naming the guests', function () {
      const s = status([vif('vif5.0'), vif('vif5.1', { devid: 1 }), vif('vif51.0', { domain: 'db01', domid: 51, policyName: 'db01' })]);
      assert.deepEqual(guestVifs(s, 'web01').map((v) => v.name), ['vif5.0', 'vif5.1']);
      assert.deepEqual(guestVifs(s, 'vif5.1').map((v) => v.name), ['vif5.1']);
      assert.deepEqual(guestVifs(s, '51').map((v) => v.name), ['vif51.0']);
      assert.throws(() => guestVifs(s, 'web02'), (e: unknown) => e instanceof XennetError && e.code === 'not-found' && /db01, web01/.test(e.hint ?? ''));
      // A guest waiting for its hook: its link still has the Xen name the operator sees in `ip link`.
      assert.deepEqual(guestVifs(status([vif('web4', { domid: 4, link: 'vif4.0' })]), 'vif4.0').map((v) => v.name), ['web4']);
      // A guest renamed by its vifname, by the Xen name of its device; its emulated NIC's by its own.
      const renamed = status([vif('web4', { domid: 4 }), vif('web4-emu', { domid: 4 })]);
      assert.deepEqual(guestVifs(renamed, 'vif4.0').map((v) => v.name), ['web4']);
      assert.deepEqual(guestVifs(renamed, 'vif4.0-emu').map((v) => v.name), ['web4-emu']);
      // ... after a guest whose interface has that very name.
      assert.deepEqual(guestVifs(status([vif('web3', { domid: 3 }), vif('vif3.0', { domid: 4, domain: 'd4' })]), 'vif3.0').map((v) => v.name), ['vif3.0']);
    });

    it('takes the host\'s problems about its own interfaces (vif5.0 is not vif5.01 nor vif15.0, app not app-2) and those about no guest, never another guest\'s', function () {
      const s = status([vif('vif5.0'), vif('vif15.0', { domain: 'db01', domid: 15, policyName: 'db01' }), vif('vif5.01', { domain: 'x', domid: 6, policyName: 'x' }), vif('app', { domain: 'app', domid: 7, policyName: 'app' }), vif('app-2', { domain: 'app-2', domid: 8, policyName: 'app-2' })], [
        'vif5.0 (web01): firewall drifted',
        'vif15.0: link is down',
        'vif5.01: hotplug-status is missing',
        'app-2 (app-2): firewall drifted',
        "bridge xenbr0: nftables chain XN-FWD differs: the dispatch to the guests' rules is broken; `xennet apply` repairs it",
      ]);
      const v = guestView({ query: 'web01', status: s, vifs: guestVifs(s, 'web01'), policy: { file: 'x', error: 'n/a' }, hooks: [], plan: { error: 'n/a' } });
      assert.deepEqual(v.problems, ['vif5.0 (web01): firewall drifted', "bridge xenbr0: nftables chain XN-FWD differs: the dispatch to the guests' rules is broken; `xennet apply` repairs it", 'its policy cannot be explained: n/a']);
      assert.equal(v.ok, false);
      // A foreign rule that undoes isolation quotes another guest's interface: still the host's problem; a departed guest's chains and another bridge's trouble are not.
      const more = status(s.vifs, ['iptables mangle PREROUTING rule 1 (-i vif15.0 -j MARK --set-xmark 0x100000/0x100000) may change the packet mark bits 0x300000 that guest isolation reads', 'stale chains of vifs that are gone: filter XN-O-vif3.0', 'bridge xenbr1: br_netfilter is off', 'backend 9/0 (db02): its hook failed (hotplug-error: "evil (web01) vif5.0") and its interface is on no bridge: the guest has no network there', 'backend 9/1 (db02): its hook has not finished (hotplug-status ""): its interface vif9.1 is on no bridge', 'backend 5/1 (web01): its hook has not finished (hotplug-status ""): its interface vif5.1 is on no bridge']);
      // Another domain's backend is never this guest's, whatever its hotplug-error quotes; its own domain's second backend is.
      assert.deepEqual(guestView({ query: 'web01', status: more, vifs: guestVifs(more, 'web01'), policy: { file: 'x', state: 'valid', settings: [] }, hooks: [], plan: { changes: [], widenings: [] } as unknown as PlanResult }).problems, [more.problems[0], more.problems[5]]);
      const app = guestView({ query: 'app', status: s, vifs: guestVifs(s, 'app'), policy: { file: 'x', error: 'n/a' }, hooks: [], plan: { changes: [], widenings: [] } as unknown as PlanResult });
      assert.ok(!app.problems.some((p) => p.includes('app-2')), JSON.stringify(app.problems));
    });

    it('a domain\'s view includes its stub domain\'s interface; a renamed vif\'s failed call (recorded under its device) counts', function () {
      const s = status([vif('vif13.0', { domain: 'web01-dm', domid: 13, policyName: 'web01', policySource: 'stubdom' }), vif('web-eth0', { devid: 0 })]);
      assert.deepEqual(guestVifs(s, 'web01').map((x) => x.name), ['vif13.0', 'web-eth0']);
      const failed: HookRecord = { at: '2026-12-06T00:00:00.000Z', command: 'online', vif: 'vif5.0', domid: 5, devid: 0, ms: 10, via: 'daemon', ok: false, message: 'no bridge' };
      const v = guestView({ query: 'web01', status: s, vifs: guestVifs(s, 'web01'), policy: { file: 'x', state: 'valid', settings: [] }, hooks: [failed], plan: { changes: [], widenings: [] } as unknown as PlanResult });
      assert.deepEqual(v.problems, ['web-eth0: its last hook call (online at 2026-12-06T00:00:00.000Z, daemon) failed: no bridge']);
      assert.deepEqual([v.domain, v.domid], ['web01', 5], 'the domain asked for heads the view, not its stub domain');
      // The emulated NIC's calls are not the vif's, nor the other way round.
      assert.equal(callOf({ name: 'vif5.0', domid: 5, devid: 0 }, { vif: 'vif5.0-emu', domid: 5, devid: 0 }), false);
      assert.equal(callOf({ name: 'vif5.0-emu', domid: 5, devid: 0 }, { vif: 'vif5.0', domid: 5, devid: 0 }), false);
      assert.equal(callOf({ name: 'web-eth0', domid: 5, devid: 0 }, { vif: 'vif5.0', domid: 5, devid: 0 }), true);
    });

    it('the policy in force when the default rule file was deleted while it was: the last good one, as the hooks keep it', function () {
      const dir = mkdtempSync(join(tmpdir(), 'xnt-kept-'));
      try {
        const file = join(dir, 'xennet.yaml');
        const env = { XENNET_STATE_DIR: join(dir, 'state') };
        writeFileSync(file, FILE);
        recordPolicy(loadPolicy(file, { absentOk: true }), env);
        rmSync(file);
        const p = policyInForce({ file, absentOk: true }, env, false, vif('vif5.0'));
        assert.ok(!('error' in p) && p.state === 'kept' && p.guest === 'web01', JSON.stringify(p));
        assert.equal(p.settings.find((x) => x.setting === 'isolation')?.from, 'web01 line 10');
        // With no last good policy recorded, a missing default file is the built-in defaults.
        const none = policyInForce({ file, absentOk: true }, { XENNET_STATE_DIR: join(dir, 'none') }, false, vif('vif5.0'));
        assert.ok(!('error' in none) && none.state === 'absent' && none.guest === undefined);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('renders its tables within the width, a failed call marked', function () {
      const policy = parsePolicy(FILE, 'x.yaml');
      const s = status([vif('vif5.0', { addresses: ['192.168.0.7/32', '2001:db8:1234:5678:9abc:def0:1234:5678/128'] })]);
      const hooks: HookRecord[] = [
        { at: '2026-12-06T00:00:00.000Z', command: 'online', vif: 'vif5.0', domid: 5, devid: 0, ms: 84, via: 'daemon', ok: true, message: 'online vif5.0 (web01) on bridge xenbr0, mtu 1500; firewall: 12 rules in chains XN-S-vif5.0, XN-I-vif5.0' },
        { at: '2026-12-06T00:01:00.000Z', command: 'offline', vif: 'vif5.0', domid: 5, devid: 0, ms: 31_000, via: 'in-process', ok: false, message: 'the hotplug lock was not had within 25 s (held by pid 4242, xennet-daemon)' },
      ];
      const v = guestView({ query: 'web01', status: s, vifs: s.vifs, policy: { file: '/etc/xen/xennet.yaml', state: 'valid', ...explainPolicy(policy, keyLines(FILE), facts({ policyName: 'db01', addresses: ['192.168.0.7/32'] })) }, hooks, plan: { error: 'not asked' } });
      const text = renderGuestView(v, false, 80, Date.parse('2026-12-06T00:02:00.000Z'));
      const table = (header: string): string[] => {
        const lines = text.split('\n');
        const start = lines.findIndex((l) => l.startsWith(header));
        assert.ok(start >= 0, `no table ${header}:\n${text}`);
        const end = lines.findIndex((l, i) => i > start && l === '');
        return lines.slice(start, end < 0 ? undefined : end);
      };
      for (const l of [...table('SETTING'), ...table('WHEN')].filter((x) => !x.includes(' failed: '))) assert.ok(l.length <= 80, `longer than 80: ${l}`);
      assert.match(text, /^ {2}offline 60 s ago failed: the hotplug lock was not had/m);
      assert.match(text, /^allow_out\[0\] +udp port 53 to 192\.168\.0\.1\/32/m);
      assert.equal(v.ok, false, 'its last call failed');
      assert.match(text, /^domain unknown|^web01 \(domain 5\): 1 problem$/m);
    });
  });
});
