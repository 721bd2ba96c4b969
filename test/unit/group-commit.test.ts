import assert from 'node:assert/strict';
import { cidr, ifn, mac } from './lib/values.js';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Backend } from '../../src/firewall/backend/xtables.js';
import { compileVif, treeMember } from '../../src/firewall/compile.js';
import { commitPending, stageInstall, stageRemove } from '../../src/firewall/incremental.js';
import { readIndex } from '../../src/firewall/index-store.js';
import type { TableName } from '../../src/firewall/model.js';
import { resolveVif } from '../../src/firewall/resolve.js';
import { silentLogger } from '../../src/sys/log.js';

function recordingBackend(): Backend & { restores: { table: TableName; text: string }[] } {
  const restores: { table: TableName; text: string }[] = [];
  return {
    variant: 'nft',
    tools: { ipv4: { save: '', restore: '' }, ipv6: { save: '', restore: '' }, eb: { save: '', restore: '' } },
    restores,
    save: async () => '',
    restore: async (table, text) => {
      restores.push({ table, text });
    },
  };
}

const vif = (name: string) => resolveVif({ version: 1 }, { name: ifn(name), bridge: ifn('xenbr0'), mac: mac('00:16:3e:00:00:01'), ipv4: [cidr('10.0.0.1')], ipv6: [] });

describe('firewall group commit (hook storms)', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'xnt-gc-'));
    env = { XENNET_STATE_DIR: dir };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('the lock holder commits every staged change in one transaction per table; the others find theirs done', async () => {
    const backend = recordingBackend();
    const tokens = ['vif1.0', 'vif2.0', 'vif3.0'].map((n) => stageInstall(treeMember(vif(n)), compileVif(vif(n)), env));
    const first = await commitPending(backend, tokens[1]!, env, silentLogger);
    assert.equal(first.batch, 3);
    assert.equal(backend.restores.length, 3, 'one restore per table for all three vifs');
    assert.ok(backend.restores.find((r) => r.table === 'ipv4')!.text.includes(':XN-O-vif3.0 - [0:0]'));
    for (const t of [tokens[0]!, tokens[2]!]) assert.deepEqual(await commitPending(backend, t, env, silentLogger), { batch: 0 });
    assert.equal(backend.restores.length, 3, 'nothing more to do');
    assert.deepEqual(Object.keys(readIndex(env).vifs).sort(), ['vif1.0', 'vif2.0', 'vif3.0']);
    assert.deepEqual(readdirSync(join(dir, 'firewall', 'pending')), [], 'nothing left staged');
  });

  it('a staged remove after an install of the same vif wins; its chains are deleted', async () => {
    const backend = recordingBackend();
    await commitPending(backend, stageInstall(treeMember(vif('vif1.0')), compileVif(vif('vif1.0')), env), env, silentLogger);
    backend.restores.length = 0;
    const t = stageRemove('vif1.0', env);
    await commitPending(backend, t, env, silentLogger);
    assert.deepEqual(readIndex(env).vifs, {});
    const v4 = backend.restores.find((r) => r.table === 'ipv4')!.text;
    assert.match(v4, /-X XN-O-vif1\.0/);
    assert.match(v4, /-D FORWARD -o xenbr0 -m physdev --physdev-is-bridged -j XN-FORWARD/, 'the last vif takes the jumps with it');
  });
});
