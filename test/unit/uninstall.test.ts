import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { currentBootId } from '../../src/sys/boot.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { installHooks, readManifest, sha256 } from '../../src/hooks/install.js';
import { forgetPort, originalsDir, readOriginals, recordOriginal, removeOriginals } from '../../src/sys/originals.js';
import { describeStep, planUninstall, type UninstallFacts } from '../../src/uninstall/plan.js';

function facts(over: Partial<UninstallFacts> = {}): UninstallFacts {
  return {
    daemon: { systemd: false, unitActive: false, unitEnabled: false, pid: null },
    firewall: [],
    guests: [],
    settings: { sysctls: [], ports: [], bridges: [], recordsPresent: false },
    files: [],
    manifestPresent: false,
    firewallState: { path: '/var/lib/xennet/firewall', present: false },
    stateDir: '/var/lib/xennet',
    takeovers: [],
    ...over,
  };
}

const fw = (table: 'ipv4' | 'eb' | 'nftables', chains: string[], roots: string[] = [], tables: string[] = []): UninstallFacts['firewall'][number] => ({ table, chains, roots, tables });
const kinds = (f: UninstallFacts, force = false): string[] => planUninstall(f, { force }).steps.map((s) => s.kind);

describe('uninstall plan', () => {
  it('a live daemon of another program or installation, named by the pid file: not stopped, but named in a note', () => {
    const p = planUninstall(facts({ daemon: { systemd: false, unitActive: false, unitEnabled: false, pid: null, other: { pid: 4321, command: 'node /opt/xennet/dist/src/cli/main.js daemon' } } }), { force: true });
    assert.ok(!p.steps.some((s) => s.kind === 'stop-daemon'));
    assert.ok(p.notes.some((n) => n.startsWith('the pid file names pid 4321 (node /opt/xennet/dist/src/cli/main.js daemon), a daemon of another program or another xennet installation: it is not stopped')), p.notes.join('\n'));
  });

  it('nothing installed: no steps, no notes (a second uninstall is a no-op)', () => {
    const p = planUninstall(facts({ firewall: [fw('ipv4', []), fw('nftables', [])] }), { force: false });
    assert.deepEqual(p, { steps: [], notes: [], unfiltered: [] });
  });

  it('refuses while guests are attached and the firewall is installed; lists them; plans nothing', () => {
    const f = facts({ firewall: [fw('ipv4', ['XN-FORWARD'], ['FORWARD -o xenbr0 -j XN-FORWARD'])], guests: [{ vif: 'vif1.0', domain: 'web01', bridge: 'xenbr0' }], daemon: { systemd: false, unitActive: false, unitEnabled: false, pid: 42 } });
    const p = planUninstall(f, { force: false });
    assert.deepEqual(p.steps, []);
    assert.match(p.refused!.reason, /1 guest interface is attached; removing the firewall would leave it unfiltered/);
    assert.deepEqual(p.refused!.guests, [{ vif: 'vif1.0', domain: 'web01', bridge: 'xenbr0' }]);
  });

  it('--force proceeds and says how many guests are unfiltered now', () => {
    const f = facts({ firewall: [fw('ipv4', ['XN-FORWARD'])], guests: [{ vif: 'vif1.0', domain: 'web01', bridge: 'xenbr0' }, { vif: 'vif2.0', domain: null, bridge: 'xenbr0' }] });
    const p = planUninstall(f, { force: true });
    assert.equal(p.refused, undefined);
    assert.deepEqual(p.unfiltered.map((g) => g.vif), ['vif1.0', 'vif2.0']);
    assert.ok(p.notes.includes('2 guest interfaces are now unfiltered: vif1.0 (web01), vif2.0 (domain unknown)'));
  });

  it('guests attached but no firewall installed: nothing to lose, no refusal', () => {
    const p = planUninstall(facts({ guests: [{ vif: 'vif1.0', domain: 'g', bridge: 'xenbr0' }], firewallState: { path: '/s/firewall', present: true } }), { force: false });
    assert.deepEqual(p.steps.map((s) => s.kind), ['drop-empty-tables', 'remove-firewall-state']);
  });

  it('the daemon stops first: SIGTERM without systemd; systemctl stop and disable with it; a hand-started daemon beside an inactive unit gets SIGTERM', () => {
    const all = { firewall: [fw('eb', ['XN-FWD'])], firewallState: { path: '/s/firewall', present: true } };
    assert.deepEqual(kinds(facts({ ...all, daemon: { systemd: false, unitActive: false, unitEnabled: false, pid: 7 } })), ['stop-daemon', 'remove-firewall', 'drop-empty-tables', 'remove-firewall-state']);
    const sd = planUninstall(facts({ ...all, daemon: { systemd: true, unitActive: true, unitEnabled: true, pid: 7 } }), { force: false });
    assert.deepEqual(sd.steps.slice(0, 2), [{ kind: 'stop-daemon', how: 'systemd', pid: 7 }, { kind: 'disable-unit' }]);
    const byHand = planUninstall(facts({ ...all, daemon: { systemd: true, unitActive: false, unitEnabled: false, pid: 9 } }), { force: false });
    assert.deepEqual(byHand.steps[0], { kind: 'stop-daemon', how: 'signal', pid: 9 });
    assert.equal(describeStep(byHand.steps[0]!), 'stop the daemon: SIGTERM to pid 9 and wait for it to exit');
  });

  it('restores only settings that differ from their record; ports and bridges gone are skipped', () => {
    const f = facts({
      settings: {
        recordsPresent: true,
        sysctls: [
          { key: 'net.bridge.bridge-nf-call-iptables', original: '0', current: '1' },
          { key: 'net.bridge.bridge-nf-filter-vlan-tagged', original: '0', current: '0' },
          { key: 'net.bridge.bridge-nf-filter-pppoe-tagged', original: '0', current: undefined },
        ],
        ports: [
          { port: 'vif1.0', present: true, values: [{ key: 'ipv6/disable_ipv6', original: '0', current: '1' }, { key: 'ipv4/rp_filter', original: '1', current: '1' }] },
          { port: 'vif2.0', present: false, values: [{ key: 'ipv6/disable_ipv6', original: '0', current: undefined }] },
        ],
        bridges: [
          { bridge: 'xenbr0', present: true, original: false, current: true },
          { bridge: 'xenbr1', present: false, original: false, current: undefined },
        ],
      },
    });
    const p = planUninstall(f, { force: false });
    assert.deepEqual(p.steps, [
      { kind: 'restore-sysctl', key: 'net.bridge.bridge-nf-call-iptables', from: '1', to: '0' },
      { kind: 'restore-port', port: 'vif1.0', values: [{ key: 'ipv6/disable_ipv6', from: '1', to: '0' }] },
      { kind: 'restore-bridge', bridge: 'xenbr0', noLinkLocalLearn: false },
      { kind: 'remove-records', path: '/var/lib/xennet/originals' },
    ]);
    assert.deepEqual(p.steps.map(describeStep), [
      'restore net.bridge.bridge-nf-call-iptables: 1 -> 0',
      'restore vif1.0: ipv6/disable_ipv6 1 -> 0',
      'restore bridge xenbr0: no_linklocal_learn on -> off',
      'remove the records of original settings /var/lib/xennet/originals',
    ]);
  });

  it('removes the files install-hooks wrote only when unchanged; a modified one is left and named; daemon-reload after the unit goes', () => {
    const f = facts({
      daemon: { systemd: true, unitActive: false, unitEnabled: false, pid: null },
      manifestPresent: true,
      files: [
        { path: '/etc/xen/scripts/vif-xennet', state: 'unchanged' },
        { path: '/etc/xen/scripts/network-xennet', state: 'modified' },
        { path: '/etc/systemd/system/xennet.service', state: 'unchanged' },
        { path: '/etc/xen/scripts/gone', state: 'missing' },
      ],
    });
    const p = planUninstall(f, { force: false });
    assert.deepEqual(p.steps.map(describeStep), ['remove /etc/xen/scripts/vif-xennet', 'remove /etc/systemd/system/xennet.service', 'remove the list of files install-hooks wrote', 'systemctl daemon-reload']);
    assert.deepEqual(p.notes, ['left /etc/xen/scripts/network-xennet: it was modified after xennet wrote it (remove it yourself if it is no longer wanted)']);
  });

  it('the bridge takeover stays, with the command that undoes it', () => {
    const p = planUninstall(facts({ takeovers: ['xenbr0'] }), { force: false });
    assert.deepEqual(p.steps, []);
    assert.deepEqual(p.notes, ['the takeover of bridge xenbr0 stays (running guests depend on it); `xennet bridge stop --bridge xenbr0` undoes it']);
  });

  it('describes firewall removal per table (nftables: its tables)', () => {
    const p = planUninstall(facts({ firewall: [fw('ipv4', ['XN-FORWARD', 'XN-I-vif1.0'], ['FORWARD -j XN-FORWARD']), fw('nftables', ['XN-FWD'], [], ['bridge xennet', 'inet xennet'])] }), { force: false });
    assert.deepEqual(p.steps.map(describeStep), [
      'remove from iptables filter: 2 chains (XN-FORWARD, XN-I-vif1.0) and 1 jump (FORWARD -j XN-FORWARD)',
      'remove from nftables: tables bridge xennet, inet xennet',
      'delete the iptables, ip6tables and ebtables tables left empty (built-in chains only, policy ACCEPT, no rules; nf_tables variant), as they were before xennet made them, and the ipsets of address learning (xn4-/xn6-<vif>)',
    ]);
    const nftOnly = planUninstall(facts({ firewall: [fw('nftables', ['XN-FWD'], [], ['bridge xennet'])] }), { force: false });
    assert.ok(!nftOnly.steps.some((s) => s.kind === 'drop-empty-tables'), 'nothing of xtables to empty');
  });
});

describe('records of original settings', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'xnt-orig-'));
    env = { XENNET_STATE_DIR: dir };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps the first value found; a later change of the same setting does not overwrite it', () => {
    assert.equal(recordOriginal({ kind: 'sysctl', key: 'net.bridge.bridge-nf-call-iptables', value: '0' }, env), true);
    assert.equal(recordOriginal({ kind: 'sysctl', key: 'net.bridge.bridge-nf-call-iptables', value: '1' }, env), false);
    assert.deepEqual(readOriginals(env).records, [{ kind: 'sysctl', key: 'net.bridge.bridge-nf-call-iptables', value: '0' }]);
  });

  it('a port record of another link of the same name (another ifindex) is replaced', () => {
    recordOriginal({ kind: 'port', port: 'vif1.0', ifindex: 10, values: { 'ipv6/disable_ipv6': '0' } }, env);
    assert.equal(recordOriginal({ kind: 'port', port: 'vif1.0', ifindex: 10, values: { 'ipv6/disable_ipv6': '1' } }, env), false);
    assert.equal(recordOriginal({ kind: 'port', port: 'vif1.0', ifindex: 11, values: { 'ipv6/disable_ipv6': '1' } }, env), true);
    assert.deepEqual(readOriginals(env).records, [{ kind: 'port', port: 'vif1.0', ifindex: 11, values: { 'ipv6/disable_ipv6': '1' } }]);
  });

  it('a record of another boot is ignored and replaced; no temporary file is left', () => {
    const path = join(originalsDir(env), 'bridge-xenbr0.json');
    recordOriginal({ kind: 'bridge', bridge: 'xenbr0', ifindex: 3, noLinkLocalLearn: false }, env);
    writeFileSync(path, JSON.stringify({ kind: 'bridge', bridge: 'xenbr0', ifindex: 3, noLinkLocalLearn: true, bootId: 'another-boot' }));
    assert.deepEqual(readOriginals(env), { records: [], stale: ['bridge-xenbr0.json'] });
    assert.equal(recordOriginal({ kind: 'bridge', bridge: 'xenbr0', ifindex: 3, noLinkLocalLearn: false }, env), true);
    assert.deepEqual(readOriginals(env).records, [{ kind: 'bridge', bridge: 'xenbr0', ifindex: 3, noLinkLocalLearn: false }]);
    assert.deepEqual(readdirSync(originalsDir(env)), ['bridge-xenbr0.json']);
    removeOriginals(env);
    assert.equal(existsSync(originalsDir(env)), false);
  });

  it('a port\'s record is forgotten when its guest goes offline (records do not pile up); others stay', () => {
    recordOriginal({ kind: 'port', port: 'vif1.0', ifindex: 10, values: { 'ipv6/disable_ipv6': '0' } }, env);
    recordOriginal({ kind: 'port', port: 'vif2.0', ifindex: 11, values: { 'ipv6/disable_ipv6': '0' } }, env);
    forgetPort('vif1.0', env);
    forgetPort('../nope', env);
    assert.deepEqual(readOriginals(env).records.map((r) => (r.kind === 'port' ? r.port : '')), ['vif2.0']);
  });

  it('hostile records are ignored: another sysctl, a value no such setting has, a file named after another setting, a port key not xennet\'s, a link', () => {
    const boot = currentBootId();
    const put = (name: string, v: unknown): void => {
      mkdirSync(originalsDir(env), { recursive: true });
      writeFileSync(join(originalsDir(env), name), JSON.stringify({ ...(v as object), bootId: boot }));
    };
    put('sysctl-kernel.core_pattern.json', { kind: 'sysctl', key: 'kernel.core_pattern', value: '|/tmp/evil %p' });
    put('sysctl-net.ipv4.ip_forward.json', { kind: 'sysctl', key: 'net.ipv4.ip_forward', value: '1' });
    put('sysctl-net.bridge.bridge-nf-call-iptables.json', { kind: 'sysctl', key: 'kernel.core_pattern', value: '1' });
    put('sysctl-net.bridge.bridge-nf-call-ip6tables.json', { kind: 'sysctl', key: 'net.bridge.bridge-nf-call-ip6tables', value: '1\n' });
    put('port-lo.json', { kind: 'port', port: 'lo', ifindex: 1, values: { 'ipv4/forwarding': '1' } });
    put('port-vif9.0.json', { kind: 'port', port: 'vif9.0', ifindex: 9, values: { 'ipv6/../../../kernel/core_pattern': '1' } });
    put('bridge-x;y.json', { kind: 'bridge', bridge: 'x;y', ifindex: 3, noLinkLocalLearn: false });
    writeFileSync(join(dir, 'elsewhere.json'), JSON.stringify({ kind: 'sysctl', key: 'net.bridge.bridge-nf-filter-vlan-tagged', value: '0', bootId: boot }));
    symlinkSync(join(dir, 'elsewhere.json'), join(originalsDir(env), 'sysctl-net.bridge.bridge-nf-filter-vlan-tagged.json'));
    put('sysctl-net.bridge.bridge-nf-filter-pppoe-tagged.json', { kind: 'sysctl', key: 'net.bridge.bridge-nf-filter-pppoe-tagged', value: '0' });
    const r = readOriginals(env);
    assert.deepEqual(r.records, [{ kind: 'sysctl', key: 'net.bridge.bridge-nf-filter-pppoe-tagged', value: '0' }], 'only the genuine record');
    assert.equal(r.stale.length, 8);
  });

  it('a records directory that is a link is neither written through nor read', () => {
    const target = join(dir, 'target');
    mkdirSync(target);
    symlinkSync(target, originalsDir(env));
    assert.equal(recordOriginal({ kind: 'sysctl', key: 'net.bridge.bridge-nf-call-iptables', value: '0' }, env), false);
    assert.deepEqual(readdirSync(target), []);
    writeFileSync(join(target, 'sysctl-net.bridge.bridge-nf-call-iptables.json'), JSON.stringify({ kind: 'sysctl', key: 'net.bridge.bridge-nf-call-iptables', value: '0', bootId: currentBootId() }));
    assert.deepEqual(readOriginals(env), { records: [], stale: [] });
  });

  it('a name that is not a file name is not recorded (and does not throw)', () => {
    assert.equal(recordOriginal({ kind: 'port', port: '../x', ifindex: 1, values: {} }, env), false);
    assert.equal(existsSync(join(dir, 'x.json')), false);
  });
});

describe('install-hooks manifest', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'xnt-manifest-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('lists what it wrote with its hash; a file already there with the same content (a package\'s) is not listed; dry-run lists nothing', () => {
    const env = { XENNET_STATE_DIR: join(dir, 'state') };
    installHooks({ dir: join(dir, 'scripts'), unitDir: join(dir, 'unit'), dryRun: true, env });
    assert.equal(readManifest(env), undefined);
    const first = installHooks({ dir: join(dir, 'scripts'), unitDir: null, dryRun: false, env });
    assert.deepEqual(first.map((f) => f.state), ['new', 'new'], 'what install-hooks says of files it created');
    const m = readManifest(env)!;
    assert.deepEqual(Object.keys(m.files).sort(), [join(dir, 'scripts', 'network-xennet'), join(dir, 'scripts', 'vif-xennet')]);
    const vif = join(dir, 'scripts', 'vif-xennet');
    assert.equal(m.files[vif]!.sha256, sha256(readFileSync(vif)));
    // Read as hostile: a listed path that install-hooks cannot have written is not listed.
    const listed = JSON.parse(readFileSync(join(dir, 'state', 'installed-files.json'), 'utf8')) as { files: Record<string, { sha256: string }> };
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'x');
    listed.files[victim] = { sha256: sha256(readFileSync(victim)) };
    listed.files[join(dir, 'scripts', '..', 'scripts', 'vif-xennet')] = { sha256: m.files[vif]!.sha256 };
    listed.files['relative/vif-xennet'] = { sha256: m.files[vif]!.sha256 };
    writeFileSync(join(dir, 'state', 'installed-files.json'), JSON.stringify(listed));
    assert.deepEqual(Object.keys(readManifest(env)!.files).sort(), [join(dir, 'scripts', 'network-xennet'), vif]);
    // Another state directory (as if a package had put the same files there): nothing is listed.
    const other = { XENNET_STATE_DIR: join(dir, 'other') };
    const again = installHooks({ dir: join(dir, 'scripts'), unitDir: null, dryRun: false, env: other });
    assert.deepEqual(again.map((f) => [f.state, f.changed]), [['unchanged', false], ['unchanged', false]]);
    assert.equal(readManifest(other), undefined);
  });
});

describe('uninstall: an emptied iptables/ebtables table', () => {
  it('is pristine only with its built-in chains at policy ACCEPT and no rule', async () => {
    const { isPristineTable } = await import('../../src/firewall/xtables/backend.js');
    const raw = '# Generated by iptables-nft-save\n*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n# Completed\n';
    assert.equal(isPristineTable(raw, 'raw'), true);
    assert.equal(isPristineTable('*nat\n:PREROUTING ACCEPT\n:OUTPUT ACCEPT\n:POSTROUTING ACCEPT\n', 'nat'), true, 'ebtables-save (no COMMIT)');
    assert.equal(isPristineTable(raw.replace(':OUTPUT ACCEPT', ':OUTPUT DROP'), 'raw'), false, 'a policy set by someone');
    assert.equal(isPristineTable(raw.replace('COMMIT', '-A PREROUTING -j CT --notrack\nCOMMIT'), 'raw'), false, 'a rule');
    assert.equal(isPristineTable(raw.replace('COMMIT', ':MINE - [0:0]\nCOMMIT'), 'raw'), false, 'a chain of someone else');
    assert.equal(isPristineTable('', 'raw'), false, 'no table at all: nothing to delete');
  });
});

describe('uninstall: a restore that fails', () => {
  it('names the record it came from, which the operator may remove', async () => {
    const { recordOf } = await import('../../src/uninstall/run.js');
    const env = { XENNET_STATE_DIR: '/var/lib/xennet' };
    assert.equal(recordOf({ kind: 'restore-port', port: 'vif5.0', values: [] }, env), ' (the value comes from /var/lib/xennet/originals/port-vif5.0.json: remove that file to leave the setting as it is)');
    assert.match(recordOf({ kind: 'restore-sysctl', key: 'net.bridge.bridge-nf-call-iptables', from: '1', to: '0' }, env), /originals\/sysctl-net\.bridge\.bridge-nf-call-iptables\.json/);
    assert.equal(recordOf({ kind: 'remove-manifest' }, env), '');
  });
});

describe('uninstall: records lost', () => {
  it('says the settings are left as they are when xennet\'s firewall is there but no record is', () => {
    const lost = planUninstall(facts({ firewall: [fw('ipv4', ['XN-FORWARD'])] }), { force: false });
    assert.ok(lost.notes.some((n) => /^no record of the settings xennet changed/.test(n)), lost.notes.join('\n'));
    const kept = planUninstall(facts({ firewall: [fw('ipv4', ['XN-FORWARD'])], settings: { sysctls: [], ports: [], bridges: [], recordsPresent: true } }), { force: false });
    assert.ok(!kept.notes.some((n) => /^no record/.test(n)));
    assert.ok(!planUninstall(facts({}), { force: false }).notes.some((n) => /^no record/.test(n)), 'nothing installed: nothing to say');
  });
});
