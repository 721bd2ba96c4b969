/** The firewall index parsed once per file: a copy each time, a new parse whenever the file is another. */
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { emptyIndex, fingerprintOf, indexStamp, loadIndex, recordedEntry, rememberIndexParses, saveIndex, type IndexEntry } from '../../src/firewall/store.js';
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

  it('is a copy: changing what one caller got changes nothing for the next (an entry is replaced, never changed: it is frozen)', function () {
    saveIndex({ ...emptyIndex(), vifs: { 'vif1.0': entry } }, t.env);
    const a = loadIndex(t.env, silentLogger);
    a.index.vifs['vif9.0'] = entry;
    assert.throws(() => (a.index.vifs['vif1.0']!.inbound = true), TypeError);
    a.index.vifs['vif1.0'] = { ...a.index.vifs['vif1.0']!, inbound: true };
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

  it('hands out copies a caller may change: the entries are frozen (a change there throws instead of changing the next caller\'s)', function () {
    saveIndex({ ...emptyIndex(), vifs: { 'vif1.0': { bridge: parseIfName('xenbr0'), inbound: false, isolated: false, state: 'installed', claims: { mac: ['00:16:3e:00:00:01'], ipv4: [], ipv6: [] } } } }, t.env);
    const a = loadIndex(t.env, silentLogger);
    a.index.dirty = true;
    assert.throws(() => (a.index.vifs['vif1.0']!.inbound = true), TypeError);
    delete a.index.vifs['vif1.0'];
    const b = loadIndex(t.env, silentLogger);
    assert.equal(b.index.dirty, false);
    assert.equal(b.index.vifs['vif1.0']!.inbound, false);
    assert.throws(() => b.index.vifs['vif1.0']!.claims!.mac.push('00:16:3e:00:00:02'), TypeError);
  });
});

describe('firewall index journal: what the daemon commits, one line per write', function () {
  const t = indexDirPerTest();
  const entry = (n: number, extra: Partial<IndexEntry> = {}): IndexEntry => ({ bridge: parseIfName('xenbr0'), inbound: false, isolated: false, state: 'installed', token: `t${n}`, ...extra });
  const file = (name: string): string => join(t.dir, 'firewall', name);
  const fresh = (): ReturnType<typeof loadIndex> => {
    rememberIndexParses(false);
    try {
      return loadIndex(t.env, silentLogger);
    } finally {
      rememberIndexParses();
    }
  };
  /** A host of `n` guests written whole, then loaded (as the daemon starts). */
  const host = (n: number): ReturnType<typeof loadIndex> => {
    const vifs: Record<string, IndexEntry> = {};
    for (let i = 1; i <= n; i++) vifs[`vif${i}.0`] = entry(i);
    saveIndex({ ...emptyIndex(), engine: { kind: 'nftables', conntrack: 'mark' }, vifs }, t.env);
    return loadIndex(t.env, silentLogger);
  };
  /** A commit as commitStaged makes one: write-ahead (dirty, the guest installing), then confirmed. */
  const commit = (name: string, e: IndexEntry | undefined): void => {
    const { index } = loadIndex(t.env, silentLogger);
    const after = { ...index.vifs };
    if (e) after[name] = { ...e, state: 'installing' };
    else delete after[name];
    saveIndex({ ...index, dirty: true, vifs: after }, t.env);
    const confirmed = { ...after };
    if (e) confirmed[name] = { ...e, state: 'installed' };
    saveIndex({ ...index, dirty: false, vifs: confirmed }, t.env);
  };

  it('a commit appends the entries it changed, not the index; a fresh parse, and a hook reading one entry, see the same as the writer', function () {
    host(100);
    const whole = statSync(file('index.json'));
    commit('vif101.0', entry(101, { inbound: true }));
    commit('vif7.0', undefined);
    commit('vif8.0', entry(8, { isolated: true }));
    const after = statSync(file('index.json'));
    assert.equal(after.ino, whole.ino, 'index.json is not written again');
    const lines = readFileSync(file('index.journal'), 'utf8').split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 6, 'two lines per commit');
    assert.ok(lines.every((l) => l.length < 400), 'each with its guest alone');
    const mine = loadIndex(t.env, silentLogger);
    const theirs = fresh();
    assert.equal(theirs.recovered, false);
    assert.deepEqual(theirs.index.vifs, mine.index.vifs);
    assert.equal(theirs.index.dirty, false);
    assert.equal(theirs.index.vifs['vif101.0']?.inbound, true);
    assert.equal(theirs.index.vifs['vif7.0'], undefined);
    assert.equal(theirs.index.vifs['vif8.0']?.isolated, true);
    rememberIndexParses(false);
    assert.equal(recordedEntry('vif101.0', t.env)?.token, 't101', 'a hook (that does not remember) reads the journal too');
    assert.equal(recordedEntry('vif7.0', t.env), undefined);
  });

  it('a write that changes nothing writes nothing; one that changes many guests (an apply) writes the index whole, under a new generation, and the journal goes', function () {
    host(100);
    commit('vif1.0', entry(1, { inbound: true }));
    const stamp = indexStamp(t.env);
    const { index } = loadIndex(t.env, silentLogger);
    saveIndex({ ...index, vifs: { ...index.vifs } }, t.env);
    assert.equal(indexStamp(t.env), stamp, 'nothing changed: nothing written');
    const gen = (JSON.parse(readFileSync(file('index.json'), 'utf8')) as { gen: string }).gen;
    const vifs: Record<string, IndexEntry> = {};
    for (const [n, e] of Object.entries(index.vifs)) vifs[n] = { ...e, isolated: true };
    saveIndex({ ...index, vifs }, t.env);
    assert.ok(!existsSync(file('index.journal')));
    assert.notEqual((JSON.parse(readFileSync(file('index.json'), 'utf8')) as { gen: string }).gen, gen);
    assert.ok(Object.values(fresh().index.vifs).every((e) => e.isolated));
  });

  it('a journal that cannot be appended to (a full disk, an immutable file) makes the write a whole one, not a failed one', function () {
    host(10);
    assert.ok(!existsSync(file('index.journal')));
    // A directory in the journal's place: no line can be appended, nor can it be removed.
    mkdirSync(join(file('index.journal'), 'blocker'), { recursive: true });
    commit('vif2.0', entry(2, { inbound: true }));
    commit('vif3.0', entry(3, { inbound: true }));
    const theirs = fresh();
    assert.equal(theirs.recovered, false);
    assert.deepEqual(['vif1.0', 'vif2.0', 'vif3.0'].map((n) => theirs.index.vifs[n]?.inbound), [false, true, true]);
    assert.deepEqual(theirs.index.vifs, loadIndex(t.env, silentLogger).index.vifs);
  });

  it('the index is written whole again once the journal has 256 lines', function () {
    host(10);
    for (let i = 0; i < 130; i++) commit('vif1.0', entry(1, { token: `again${i}` }));
    const lines = readFileSync(file('index.journal'), 'utf8').split('\n').filter((l) => l !== '').length;
    assert.ok(lines > 0 && lines < 256, `${lines} lines`);
    assert.equal(fresh().index.vifs['vif1.0']?.token, 'again129');
  });

  it('a line cut short (a crash in the middle of an append) ends the replay, and the next write is a whole one; a line of an earlier generation is not replayed', function () {
    host(10);
    commit('vif1.0', entry(1, { inbound: true }));
    appendFileSync(file('index.journal'), '{"gen":"x","vifs":{"vif2.0":nu');
    const cut = fresh();
    assert.equal(cut.recovered, false);
    assert.equal(cut.index.vifs['vif1.0']?.inbound, true, 'what was written before it stands');
    // The daemon starts anew on such a journal: its first write is whole.
    rememberIndexParses(false);
    rememberIndexParses();
    commit('vif2.0', entry(2, { inbound: true }));
    assert.ok(!existsSync(file('index.journal')) || !readFileSync(file('index.journal'), 'utf8').includes('nu'), 'the cut line is gone with its journal');
    assert.equal(fresh().index.vifs['vif2.0']?.inbound, true);
    // Lines left by a crash between a whole write and the journal's removal name the generation before.
    const old = readFileSync(file('index.journal'), 'utf8');
    const { index } = loadIndex(t.env, silentLogger);
    rememberIndexParses(false);
    saveIndex({ ...index, vifs: { ...index.vifs, 'vif3.0': entry(3, { isolated: true }) } }, t.env); // whole, new generation
    writeFileSync(file('index.journal'), `${old}${JSON.stringify({ gen: 'not-this-one', vifs: { 'vif3.0': null } })}\n`);
    assert.equal(loadIndex(t.env, silentLogger).index.vifs['vif3.0']?.isolated, true);
  });

  it('the removals a commit writes ahead are journaled and read back; its confirm clears them; a hostile list is none', function () {
    host(3);
    const { index } = loadIndex(t.env, silentLogger);
    const { 'vif2.0': _gone, ...rest } = index.vifs;
    saveIndex({ ...index, dirty: true, vifs: rest, removing: ['vif2.0'] }, t.env);
    assert.equal(readFileSync(file('index.journal'), 'utf8').split('\n').filter((l) => l !== '').length, 1, 'a line, not the index');
    assert.deepEqual(fresh().index.removing, ['vif2.0'], 'a fresh reader has them');
    assert.deepEqual(loadIndex(t.env, silentLogger).index.removing, ['vif2.0'], 'the writer has them');
    saveIndex({ ...index, dirty: false, vifs: rest }, t.env);
    assert.equal(fresh().index.removing, undefined, 'confirmed: none left');
    assert.equal(loadIndex(t.env, silentLogger).index.removing, undefined);
    const gen = (JSON.parse(readFileSync(file('index.json'), 'utf8')) as { gen: string }).gen;
    for (const removing of [['../../etc'], 'vif1.0', [1], Array.from({ length: 5000 }, (_, i) => `vif${i}.0`)]) {
      writeFileSync(file('index.journal'), `${JSON.stringify({ gen, removing })}\n`);
      const r = fresh();
      assert.equal(r.recovered, false);
      assert.equal(r.index.removing, undefined, JSON.stringify(removing).slice(0, 40));
    }
  });

  it('a journal line is as hostile as the file: an entry or a whole line that does not parse makes the index unreadable (rebuilt from the live rules)', function () {
    host(3);
    const gen = (JSON.parse(readFileSync(file('index.json'), 'utf8')) as { gen: string }).gen;
    writeFileSync(file('index.journal'), `${JSON.stringify({ gen, vifs: { 'vif1.0': { bridge: '../../etc', inbound: true } } })}\n`);
    assert.equal(fresh().recovered, true);
    writeFileSync(file('index.journal'), `${JSON.stringify({ gen, vifs: { 'not a name!': entry(1) } })}\n`);
    assert.equal(fresh().recovered, true);
    // A whole line that does not parse, with lines after it: damage, not a crash (whose line is the last, cut short).
    const ok = (n: number): string => `${JSON.stringify({ gen, vifs: { [`vif${n}.0`]: null } })}\n`;
    writeFileSync(file('index.journal'), `${ok(1)}GARBAGE{{{\n${ok(2)}`);
    assert.equal(fresh().recovered, true, 'damaged in the middle');
    writeFileSync(file('index.journal'), `${ok(1)}${ok(2)}{"gen":"${gen}","vifs":{"vif3.0":nu`);
    const cut = fresh();
    assert.equal(cut.recovered, false, 'cut short at the end');
    assert.deepEqual(Object.keys(cut.index.vifs), ['vif3.0']);
  });
});
