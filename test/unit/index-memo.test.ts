/** The firewall index parsed once per file: a copy each time, a new parse whenever the file is another. */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { emptyIndex, loadIndex, rememberIndexParses, saveIndex } from '../../src/firewall/store.js';
import { silentLogger } from '../../src/sys/log.js';
import { parseIfName } from '../../src/net/index.js';

describe('firewall index, loaded again', function () {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'xnt-index-'));
    env = { XENNET_STATE_DIR: dir };
    mkdirSync(join(dir, 'firewall'), { recursive: true });
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  before(() => rememberIndexParses());
  after(() => rememberIndexParses(false));

  const entry = { bridge: parseIfName('xenbr0'), inbound: false, isolated: false, state: 'installed' as const };

  it('is a copy: changing what one caller got changes nothing for the next', function () {
    saveIndex({ ...emptyIndex(), vifs: { 'vif1.0': entry } }, env);
    const a = loadIndex(env, silentLogger);
    a.index.vifs['vif9.0'] = entry;
    a.index.vifs['vif1.0']!.inbound = true;
    const b = loadIndex(env, silentLogger);
    assert.deepEqual(Object.keys(b.index.vifs), ['vif1.0']);
    assert.equal(b.index.vifs['vif1.0']!.inbound, false);
  });

  it('follows every write: atomic (a new file), in place, and a file that no longer parses', function () {
    saveIndex({ ...emptyIndex(), vifs: { 'vif1.0': entry } }, env);
    assert.deepEqual(Object.keys(loadIndex(env, silentLogger).index.vifs), ['vif1.0']);
    saveIndex({ ...emptyIndex(), vifs: { 'vif2.0': entry } }, env);
    assert.deepEqual(Object.keys(loadIndex(env, silentLogger).index.vifs), ['vif2.0'], 'an atomic write');
    writeFileSync(join(dir, 'firewall', 'index.json'), 'garbage that does not parse, of another size');
    const broken = loadIndex(env, silentLogger);
    assert.equal(broken.recovered, true, 'written in place');
    assert.deepEqual(broken.index.vifs, {});
    rmSync(join(dir, 'firewall', 'index.json'));
    assert.equal(loadIndex(env, silentLogger).recovered, true, 'gone');
  });
});
