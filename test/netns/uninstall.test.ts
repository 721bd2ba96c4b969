/**
 * `xennet uninstall` on the simulated Xen host, on both backends: a host with guests, an apply,
 * the daemon running and install-hooks' files; settings given values other than the kernel's
 * defaults before xennet touches them, so restoring "the defaults" would fail. Refused while
 * guests are attached, nothing changed by a refusal or a dry run; with --force every trace of
 * xennet goes from the kernel and the files, the settings are what they were, foreign rules stay,
 * and a second run does nothing.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SimHost, type SimGuest } from '../../src/sim/host.js';
import { sweepLeftovers } from './lib/netns.js';

const RULES = `version: 1
guests:
  web01:
    mac: "00:16:3e:00:00:05"
    ipv4: [192.168.0.105]
    inbound: drop
    allow_in:
      - { proto: tcp, ports: [80] }
`;

const BRIDGE_SYSCTLS = ['bridge-nf-call-iptables', 'bridge-nf-call-ip6tables', 'bridge-nf-filter-vlan-tagged', 'bridge-nf-filter-pppoe-tagged'].map((k) => `bridge/${k}`);
const PORT_KEYS = ['ipv6/conf/PORT/disable_ipv6', 'ipv4/conf/PORT/drop_unicast_in_l2_multicast', 'ipv4/conf/PORT/rp_filter'];

for (const backend of ['xtables', 'nftables'] as const)
describe(`xennet uninstall (netns, simulated Xen host, ${backend} backend)`, function () {
  this.timeout(240_000);
  const native = backend === 'nftables';
  let host: SimHost;
  let web: SimGuest;
  let other: SimGuest;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let daemonPid: number;
  /** The host's state directory (the takeover's journal is there). */
  let state: string;
  /** The values before xennet touched anything (set away from the kernel's defaults). */
  let original: { bridge: string[]; port: string[]; nll: string };

  const sh = async (file: string, args: string[]): Promise<string> => {
    const r = await host.dom0.exec(file, args);
    assert.equal(r.code, 0, `${file} ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const proc = async (path: string): Promise<string> => (await sh('cat', [`/proc/sys/net/${path}`])).trim();
  const bridgeSysctls = (): Promise<string[]> => Promise.all(BRIDGE_SYSCTLS.map(proc));
  const portSysctls = (port: string): Promise<string[]> => Promise.all(PORT_KEYS.map((k) => proc(k.replace('PORT', port))));
  const noLinkLocalLearn = async (): Promise<string> => /no_linklocal_learn (\d)/.exec(await sh('ip', ['-d', 'link', 'show', 'xenbr0']))?.[1] ?? '?';
  /** Every rule in every table (counters taken out: guests' traffic moves them). */
  const ruleset = async (): Promise<string> =>
    [await sh('iptables-save', []), await sh('ip6tables-save', []), await sh('ebtables-save', []), await sh('nft', ['list', 'ruleset'])]
      .join('\n')
      .replace(/^#.*$/gm, '')
      .replace(/\[\d+:\d+\]/g, '')
      .replace(/packets \d+ bytes \d+/g, '');
  const files = (): string[] => [...readdirSync(join(dir, 'scripts')).map((f) => `scripts/${f}`), ...readdirSync(join(dir, 'unit')).map((f) => `unit/${f}`), ...readdirSync(state, { recursive: true, encoding: 'utf8' }).map((f) => `state/${f}`)].sort();
  const snapshot = async (): Promise<unknown> => ({ rules: await ruleset(), bridge: await bridgeSysctls(), web: await portSysctls(web.vif), nll: await noLinkLocalLearn(), files: files() });
  const uninstall = (...args: string[]) => host.xennet(['uninstall', ...args], env);

  before(async () => {
    await sweepLeftovers();
    dir = mkdtempSync(join(tmpdir(), 'xnt-uninstall-'));
    writeFileSync(join(dir, 'xennet.yaml'), `backend: ${native ? 'nftables' : 'xtables'}\n${RULES}`);
    host = await SimHost.create({ autostart: false });
    env = { XENNET_RULES: join(dir, 'xennet.yaml') };
    state = host.env()['XENNET_STATE_DIR']!;
    await host.takeover();
    // Away from the defaults, before xennet: call-iptables/ip6tables off; the tagged-frame
    // settings the other way round from what this backend wants; the bridge learning from
    // link-local frames; one guest port with loose reverse path filtering.
    await sh('sysctl', ['-qw', 'net.bridge.bridge-nf-call-iptables=0', 'net.bridge.bridge-nf-call-ip6tables=0', `net.bridge.bridge-nf-filter-vlan-tagged=${native ? 1 : 0}`, `net.bridge.bridge-nf-filter-pppoe-tagged=${native ? 1 : 0}`]);
    await sh('ip', ['link', 'set', 'xenbr0', 'type', 'bridge', 'no_linklocal_learn', '0']);
    web = await host.addGuest({ domid: 5, name: 'web01', mac: '00:16:3e:00:00:05', addresses: ['192.168.0.105/24'] });
    other = await host.addGuest({ domid: 6, name: 'other', mac: '00:16:3e:00:00:06', addresses: ['192.168.0.106/24'], xenstoreIp: '192.168.0.106' });
    await sh('sysctl', ['-qw', `net.ipv4.conf.${web.vif.replace('.', '/')}.rp_filter=2`]);
    original = { bridge: await bridgeSysctls(), port: await portSysctls(web.vif), nll: await noLinkLocalLearn() };
    // Someone else's rules, which must stay.
    await sh('iptables', ['-A', 'FORWARD', '-s', '203.0.113.9/32', '-j', 'DROP']);
    await sh('ebtables', ['-A', 'FORWARD', '-s', '00:16:3e:99:99:99', '-j', 'DROP']);
    if (native) await sh('nft', ['add table inet foreign; add chain inet foreign c { type filter hook forward priority 0; }; add rule inet foreign c ip saddr 203.0.113.9 drop']);

    for (const g of [web, other]) {
      const r = await host.runVifScript('vif-xennet', g, 'online', 'libxl', { env });
      assert.equal(r.code, 0, r.stderr);
    }
    // A guest that came and went: its port's record goes with it.
    const brief = await host.addGuest({ domid: 7, name: 'brief', mac: '00:16:3e:00:00:07', addresses: ['192.168.0.107/24'], xenstoreIp: '192.168.0.107' });
    for (const cmd of ['online', 'offline']) assert.equal((await host.runVifScript('vif-xennet', brief, cmd, 'libxl', { env })).code, 0, cmd);
    host.removeDevice(brief);
    await sh('ip', ['link', 'del', brief.vif]);
    const applied = await host.xennet(['apply'], env);
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    const installed = await host.xennet(['install-hooks', '--dir', join(dir, 'scripts'), '--unit-dir', join(dir, 'unit')], env);
    assert.equal(installed.code, 0, installed.stderr);
    appendFileSync(join(dir, 'scripts', 'network-xennet'), '# the operator\'s change\n');
    assert.equal(existsSync(join(host.runDir, 'autostart.off')), false, 'install-hooks lets hooks start the daemon (the host had it off)');
    daemonPid = await host.startDaemon(env);
  });

  after(async () => {
    await host?.stopDaemon().catch(() => null);
    await host?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('xennet changed the settings (the test can fail): call-iptables on, the port closed, no_linklocal_learn on', async () => {
    assert.deepEqual(readdirSync(join(state, 'originals')).filter((f) => f.startsWith('port-')).sort(), ['port-vif5.0.json', 'port-vif6.0.json'], 'records of the attached ports; the one of the guest that went offline is gone');
    assert.notDeepEqual(await bridgeSysctls(), original.bridge);
    assert.notDeepEqual(await portSysctls(web.vif), original.port);
    assert.equal(await noLinkLocalLearn(), '1');
    assert.equal(original.nll, '0');
    assert.match(await ruleset(), native ? /table bridge xennet/ : /XN-FORWARD/);
  });

  it('refused while guests are attached (exit 1, the guests listed); nothing changed, the daemon still runs', async () => {
    const was = await snapshot();
    const r = await uninstall();
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /2 guest interfaces are attached; removing the firewall would leave them unfiltered/);
    assert.match(r.stderr, /vif5\.0 \(web01\) on xenbr0/);
    assert.match(r.stderr, /vif6\.0 \(other\) on xenbr0/);
    assert.equal(existsSync(join(host.runDir, 'autostart.off')), false, 'refused: hooks may still start the daemon');
    assert.match(r.stderr, /xennet uninstall --force/);
    assert.deepEqual(await snapshot(), was);
    assert.doesNotThrow(() => process.kill(daemonPid, 0));
  });

  it('--dry-run prints every step and changes nothing', async () => {
    const was = await snapshot();
    const r = await uninstall('--dry-run', '--force');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^xennet uninstall would \(dry run: nothing was changed\):/);
    assert.match(r.stdout, new RegExp(`stop the daemon: SIGTERM to pid ${daemonPid}`));
    assert.match(r.stdout, native ? /remove from nftables: tables bridge xennet/ : /remove from iptables filter: \d+ chains \(XN-/);
    if (!native) for (const t of ['ip6tables filter', 'iptables raw', 'ip6tables raw', 'ebtables nat']) assert.match(r.stdout, new RegExp(`remove from ${t}`));
    assert.match(r.stdout, /restore net\.bridge\.bridge-nf-call-iptables: 1 -> 0/);
    assert.match(r.stdout, /restore vif5\.0: .*ipv4\/rp_filter 1 -> 2/);
    assert.match(r.stdout, /restore bridge xenbr0: no_linklocal_learn on -> off/);
    assert.match(r.stdout, /remove .*scripts\/vif-xennet/);
    assert.match(r.stdout, /note: left .*scripts\/network-xennet: it was modified/);
    assert.match(r.stdout, /note: 2 guest interfaces are now unfiltered: vif5\.0 \(web01\), vif6\.0 \(other\)/);
    assert.match(r.stdout, /note: the takeover of bridge xenbr0 stays .*xennet bridge stop --bridge xenbr0/);
    const json = await uninstall('--dry-run', '--force', '--json');
    const j = JSON.parse(json.stdout) as { dryRun: boolean; steps: { kind: string }[]; unfiltered: unknown[] };
    assert.equal(j.dryRun, true);
    assert.equal(j.steps[0]?.kind, 'stop-daemon');
    assert.equal(j.unfiltered.length, 2);
    assert.deepEqual(await snapshot(), was);
    assert.doesNotThrow(() => process.kill(daemonPid, 0));
  });

  it('--force: stops the daemon first, removes every trace, restores what the settings were; foreign rules stay', async () => {
    const r = await uninstall('--force');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /done: stop the daemon/);
    assert.match(r.stdout, /note: 2 guest interfaces are now unfiltered/);
    assert.equal(await host.stopDaemon(), 0, 'the daemon exited on its own (SIGTERM from uninstall), cleanly');
    // A hook the toolstack still runs starts no daemon again: it runs in-process.
    assert.match(readFileSync(join(host.runDir, 'autostart.off'), 'utf8'), /set by xennet uninstall/);
    // Past the daemon's repair delay: nothing comes back.
    await sleep(1500);
    const rules = await ruleset();
    assert.doesNotMatch(rules, /XN-|xennet/);
    assert.match(rules, /-A FORWARD -s 203\.0\.113\.9\/32 -j DROP/);
    assert.match(rules, /-A FORWARD -s 00:16:3e:99:99:99 -j DROP/);
    if (native) assert.match(rules, /table inet foreign/);
    assert.deepEqual(await bridgeSysctls(), original.bridge);
    assert.deepEqual(await portSysctls(web.vif), original.port);
    assert.equal(await noLinkLocalLearn(), original.nll);
    // Files: the unchanged ones and the manifest went, the modified one stayed; the state
    // directory stays (the takeover journal), without the firewall's index or the records.
    assert.deepEqual(readdirSync(join(dir, 'scripts')), ['network-xennet']);
    assert.deepEqual(readdirSync(join(dir, 'unit')), []);
    assert.ok(existsSync(join(state, 'takeover-xenbr0.json')));
    for (const gone of ['firewall', 'originals', 'installed-files.json']) assert.equal(existsSync(join(state, gone)), false, gone);
    // The guests stay attached, unfiltered.
    assert.ok(await web.ns.ping('192.168.0.106'));
  });

  it('status reports nothing of xennet\'s installed: no chains, no vif managed', async () => {
    const r = await host.xennet(['status', '--json'], env);
    const s = JSON.parse(r.stdout) as { ok: boolean; installed: boolean; problems: string[]; notes: string[]; vifs: { name: string; firewall: string }[]; staleChains: string[]; daemon: { running: boolean } };
    assert.equal(s.installed, false);
    assert.deepEqual(s.problems, []);
    assert.equal(r.code, 0);
    assert.ok(s.notes.includes("xennet's firewall is not installed on this host (no rules of its own, no firewall index): 2 attached guest interfaces are not filtered by xennet; `xennet apply` installs it"), JSON.stringify(s.notes));
    assert.deepEqual(s.vifs.map((v) => [v.name, v.firewall]), [['vif5.0', 'not-managed'], ['vif6.0', 'not-managed']]);
    assert.deepEqual(s.staleChains, []);
    assert.equal(s.daemon.running, false);
  });

  it('a second run is a no-op', async () => {
    const was = await snapshot();
    const r = await uninstall();
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^nothing of xennet's is installed on this host; nothing to do/);
    assert.deepEqual(await snapshot(), was);
  });
});
