/** The firewall index parsed once per file: a copy each time, a new parse whenever the file is another. */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { emptyIndex, fingerprintOf, loadIndex, rememberIndexParses, saveIndex, type IndexEntry } from '../../src/firewall/store.js';
import { compileVif, memberFacts } from '../../src/firewall/compile.js';
import type { VifFacts } from '../../src/firewall/model.js';
import { resolveVif } from '../../src/firewall/resolve.js';
import { selfIdentity } from '../../src/sys/process.js';
import { cidr, dom, mac } from './lib/values.js';
import { silentLogger } from '../../src/sys/log.js';
import { parseIfName } from '../../src/net/index.js';

/** A state directory of its own for each test, with parses remembered while it runs. */
function indexDirPerTest(): { dir: string; env: NodeJS.ProcessEnv } {
  const t = { dir: '', env: {} as NodeJS.ProcessEnv };
  beforeEach(() => {
    t.dir = mkdtempSync(join(tmpdir(), 'xnt-index-'));
    t.env = { XENNET_STATE_DIR: t.dir };
    mkdirSync(join(t.dir, 'firewall'), { recursive: true });
    rememberIndexParses();
  });
  afterEach(() => {
    rememberIndexParses(false);
    rmSync(t.dir, { recursive: true, force: true });
  });
  return t;
}

describe('firewall index, loaded again', function () {
  const t = indexDirPerTest();

  const entry = { bridge: parseIfName('xenbr0'), inbound: false, isolated: false, state: 'installed' as const };

  it('is a copy: changing what one caller got changes nothing for the next', function () {
    saveIndex({ ...emptyIndex(), vifs: { 'vif1.0': entry } }, t.env);
    const a = loadIndex(t.env, silentLogger);
    a.index.vifs['vif9.0'] = entry;
    a.index.vifs['vif1.0']!.inbound = true;
    const b = loadIndex(t.env, silentLogger);
    assert.deepEqual(Object.keys(b.index.vifs), ['vif1.0']);
    assert.equal(b.index.vifs['vif1.0']!.inbound, false);
  });

  it('follows every write: atomic (a new file), in place, and a file that no longer parses', function () {
    saveIndex({ ...emptyIndex(), vifs: { 'vif1.0': entry } }, t.env);
    assert.deepEqual(Object.keys(loadIndex(t.env, silentLogger).index.vifs), ['vif1.0']);
    saveIndex({ ...emptyIndex(), vifs: { 'vif2.0': entry } }, t.env);
    assert.deepEqual(Object.keys(loadIndex(t.env, silentLogger).index.vifs), ['vif2.0'], 'an atomic write');
    writeFileSync(join(t.dir, 'firewall', 'index.json'), 'garbage that does not parse, of another size');
    const broken = loadIndex(t.env, silentLogger);
    assert.equal(broken.recovered, true, 'written in place');
    assert.deepEqual(broken.index.vifs, {});
    rmSync(join(t.dir, 'firewall', 'index.json'));
    assert.equal(loadIndex(t.env, silentLogger).recovered, true, 'gone');
  });
});

describe('firewall index, as this process wrote it', function () {
  const t = indexDirPerTest();

  it('is remembered as written, and equals what a fresh parse of the file makes of it', function () {
    const policy = { version: 1 as const, guests: { [dom('web')]: { isolation: true, learn_addresses: true } } };
    const facts = (n: number, extra: Partial<VifFacts> = {}): VifFacts => ({ name: parseIfName(`vif${n}.0`), bridge: parseIfName('xenbr0'), domid: n, devid: 0, mac: mac(`00:16:3e:00:00:0${n}`), ipv4: [cidr(`192.0.2.${n}`)], ipv6: [cidr(`2001:DB8::${n}`)], ...extra });
    const vifs: Record<string, IndexEntry> = {};
    for (const v of [resolveVif(policy, facts(1, { domain: dom('web') })), resolveVif(policy, facts(2)), resolveVif(policy, { ...facts(3), ipv4: [], ipv6: [] })]) {
      const member = memberFacts(v);
      vifs[v.name] = { ...member, owner: { domid: v.domid!, devid: 0 }, names: `k${v.name}`, token: 't', state: 'installing', stager: selfIdentity(), fingerprint: fingerprintOf(member, { domid: v.domid!, devid: 0 }, compileVif(v, { kind: 'nftables', conntrack: 'mark' })) };
    }
    saveIndex({ ...emptyIndex(), engine: { kind: 'nftables', conntrack: 'mark' }, backend: 'nft', dirty: true, vifs }, t.env);
    const remembered = loadIndex(t.env, silentLogger);
    rememberIndexParses(false);
    const parsed = loadIndex(t.env, silentLogger);
    assert.equal(parsed.recovered, false);
    assert.deepEqual(remembered, parsed);
  });

  it('hands out copies a caller may change: the entries\' values are frozen (a change there throws instead of changing the next caller\'s)', function () {
    saveIndex({ ...emptyIndex(), vifs: { 'vif1.0': { bridge: parseIfName('xenbr0'), inbound: false, isolated: false, state: 'installed', claims: { mac: ['00:16:3e:00:00:01'], ipv4: [], ipv6: [] } } } }, t.env);
    const a = loadIndex(t.env, silentLogger);
    a.index.dirty = true;
    a.index.vifs['vif1.0']!.inbound = true;
    delete a.index.vifs['vif1.0'];
    const b = loadIndex(t.env, silentLogger);
    assert.equal(b.index.dirty, false);
    assert.equal(b.index.vifs['vif1.0']!.inbound, false);
    assert.throws(() => b.index.vifs['vif1.0']!.claims!.mac.push('00:16:3e:00:00:02'), TypeError);
  });
});
