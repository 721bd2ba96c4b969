/**
 * Group commit of staged vif changes, against an in-memory restore/save model: batching, write
 * ahead and recovery after a crash, stagers that died, unreadable state, removal from the live
 * rules when the index does not know a vif.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { commitStaged, stageInstall, stageRemove } from '../../src/firewall/commit.js';
import { compile, compileVif, memberFacts } from '../../src/firewall/compile.js';
import { dialectOf, tableNames, type ResolvedVif } from '../../src/firewall/model.js';
import { normalizeRule } from '../../src/firewall/normalize.js';
import { resolveVif } from '../../src/firewall/resolve.js';
import { parseLive } from '../../src/firewall/drivers.js';
import { loadIndex, pendingDir, stage, unstage, type StagedChange } from '../../src/firewall/store.js';
import { silentLogger, type Logger } from '../../src/sys/log.js';
import { ModelBackend } from './lib/model-backend.js';
import { installedEngine } from '../../src/firewall/engine.js';
import { cidr, ifn, mac } from './lib/values.js';

const vif = (name: string, n = 1): ResolvedVif => resolveVif({ version: 1 }, { name: ifn(name), bridge: ifn('xenbr0'), domid: n, devid: 0, mac: mac(`00:16:3e:00:00:${n.toString(16).padStart(2, '0')}`), ipv4: [cidr(`10.0.0.${n}`)], ipv6: [] });
const install = (v: ResolvedVif, env: NodeJS.ProcessEnv): StagedChange => stageInstall(v.name, memberFacts(v), compileVif(v), { domid: v.domid!, devid: 0 }, undefined, env);

/** Whether the model's live rules are exactly what compile() of `vifs` wants (chains and roots). */
async function assertLiveIs(b: ModelBackend, vifs: ResolvedVif[]): Promise<void> {
  const want = compile(vifs);
  for (const t of tableNames) {
    const live = parseLive(await b.save(t), t);
    const canon = (m: Map<string, string[]>) => [...m].map(([k, v]) => `${k}: ${v.map((r) => normalizeRule(r, dialectOf(t))).join(' | ')}`).sort();
    assert.deepEqual(canon(live.chains), canon(want[t].chains), `${t} chains`);
    assert.deepEqual(live.roots.map((r) => `${r.chain} ${r.rule}`).sort(), want[t].roots.map((r) => `${r.chain} ${r.rule}`).sort(), `${t} roots`);
  }
}

function recordingLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, debug: () => undefined, info: (m) => lines.push(m), warning: (m) => lines.push(m), err: (m) => lines.push(m) };
}

/** A pid that is certainly not running. */
const deadPid = 2 ** 22 + 17;

/** Two guests installed and committed on a fresh model: vif1.0 stays, vif2.0 is the one that leaves. */
async function twoGuests(env: NodeJS.ProcessEnv): Promise<{ b: ModelBackend; keep: ResolvedVif; gone: ResolvedVif }> {
  const b = new ModelBackend();
  const keep = vif('vif1.0', 1);
  const gone = vif('vif2.0', 2);
  install(keep, env);
  install(gone, env);
  await commitStaged(b, env, silentLogger);
  return { b, keep, gone };
}

describe('firewall group commit (hook storms, crashes, unreadable state)', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'xnt-gc-'));
    env = { XENNET_STATE_DIR: dir };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('a change staged for the other backend (an apply moved the firewall since) is left to its stager, never installed', async () => {
    const b = new ModelBackend();
    const ok = vif('vif1.0', 1);
    install(ok, env);
    const stray = vif('vif2.0', 2);
    const token = stageInstall(stray.name, { bridge: stray.bridge, inbound: false, isolated: false }, compileVif(stray, { kind: 'nftables', conntrack: 'mark' }), { domid: 2, devid: 0 }, undefined, env).token;
    const log = recordingLog();
    const r = await commitStaged(b, env, log);
    assert.equal(r.batch, 1, 'only the xtables change');
    assert.deepEqual(Object.keys(loadIndex(env, silentLogger).index.vifs), ['vif1.0']);
    assert.ok(readdirSync(pendingDir(env)).some((f) => f.startsWith(token)), 'still staged, for its stager to withdraw');
    assert.ok(log.lines.some((l) => /left out vif2\.0: staged for the other firewall backend/.test(l)), log.lines.join('\n'));
    await assertLiveIs(b, [ok]);
  });

  it('a record from before the nftables backend (guests, no engine) means xtables is installed, whatever the rule file now selects', async () => {
    install(vif('vif1.0', 1), env);
    await commitStaged(new ModelBackend(), env, silentLogger);
    const path = join(env['XENNET_STATE_DIR']!, 'firewall', 'index.json');
    const { engine: _gone, ...old } = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    writeFileSync(path, JSON.stringify(old));
    assert.deepEqual(await installedEngine(env, silentLogger, { backend: 'nftables' }), { kind: 'xtables' });
  });

  it('the lock holder commits every staged change in one transaction per table; the index records each with its token', async () => {
    const b = new ModelBackend();
    const vifs = [vif('vif1.0', 1), vif('vif2.0', 2), vif('vif3.0', 3)];
    const changes = vifs.map((v) => install(v, env));
    const r = await commitStaged(b, env, silentLogger);
    assert.equal(r.batch, 3);
    assert.equal(b.restores.length, 5, 'one restore per table that changes (iptables, ip6tables, their raw tables for the identity guard, ebtables nat), for all three vifs');
    assert.ok(r.reconciled, 'no record yet (first commit of the boot): the live rules decide');
    const { index } = loadIndex(env, silentLogger);
    assert.equal(index.dirty, false);
    assert.deepEqual(Object.entries(index.vifs).map(([n, e]) => [n, e.token, e.state, e.owner?.domid]).sort(), changes.map((c, i) => [c.name, c.token, 'installed', i + 1]));
    assert.deepEqual(readdirSync(pendingDir(env)), [], 'nothing left staged');
    await assertLiveIs(b, vifs);
    assert.deepEqual(await commitStaged(b, env, silentLogger), { batch: 0, tokens: [], reconciled: false }, 'nothing more to do');
    const saves = b.saves;
    const more = vif('vif4.0', 4);
    install(more, env);
    const r2 = await commitStaged(b, env, silentLogger);
    assert.equal(r2.reconciled, false);
    assert.equal(b.saves, saves, 'with a record: incremental, the live rules are not read');
    await assertLiveIs(b, [...vifs, more]);
  });

  it('a staged remove after an install of the same vif wins; the last vif takes the jumps with it', async () => {
    const b = new ModelBackend();
    install(vif('vif1.0'), env);
    await commitStaged(b, env, silentLogger);
    stageRemove(ifn('vif1.0'), env);
    await commitStaged(b, env, silentLogger);
    assert.deepEqual(loadIndex(env, silentLogger).index.vifs, {});
    await assertLiveIs(b, []);
  });

  it('a repeated online with another policy leaves exactly the new chains (old ones it no longer has go)', async () => {
    const b = new ModelBackend();
    install(vif('vif1.0', 1), env);
    await commitStaged(b, env, silentLogger);
    assert.ok(b.owned('ipv4').has('XN-S-vif1.0'));
    const bare = resolveVif({ version: 1 }, { name: ifn('vif1.0'), bridge: ifn('xenbr0'), domid: 1, devid: 0, ipv4: [], ipv6: [] });
    install(bare, env);
    await commitStaged(b, env, silentLogger);
    await assertLiveIs(b, [bare]);
  });

  it('a staged change of a process that is gone is discarded, never committed', async () => {
    const b = new ModelBackend();
    const v = vif('vif1.0');
    const change = { ...install(v, env), stager: { pid: deadPid, start: '1', boot: 'x' } };
    stage(change, compileVif(v), env); // rewrite it as if a hook that died had staged it
    const log = recordingLog();
    const r = await commitStaged(b, env, log);
    assert.equal(r.batch, 0);
    assert.equal(b.restores.length, 0, 'nothing installed for a vif that never came up');
    assert.ok(log.lines.some((l) => /discarded staged firewall change .*install of vif1\.0 by pid \d+, which is gone/.test(l)), log.lines.join('\n'));
    assert.deepEqual(readdirSync(pendingDir(env)), []);
  });

  it('a removal whose stager died before committing it (the daemon answers an offline once it is staged) is finished by the next commit, unless a newer install has the name (found by an adversarial review)', async () => {
    const { b, keep, gone } = await twoGuests(env);
    const orphan = (): void => {
      const { index } = loadIndex(env, silentLogger);
      const change = { ...stageRemove(gone.name, env, index.vifs['vif2.0']?.token), stager: { pid: deadPid, start: '1', boot: 'x' } };
      rmSync(pendingDir(env), { recursive: true, force: true });
      stage(change, undefined, env); // as if the daemon that staged it had died
    };
    // The control: the install the removal was staged against is replaced by a newer one, committed
    // alone (a hook's retry of its own change) before any commit takes the removal.
    orphan();
    const newer = vif('vif2.0', 3);
    const again = install(newer, env);
    await commitStaged(b, env, silentLogger, { only: new Set([again.token]) });
    assert.equal(readdirSync(pendingDir(env)).length, 1, 'the orphaned removal is still staged');
    const log = recordingLog();
    await commitStaged(b, env, log, { full: true });
    assert.ok(log.lines.some((l) => /discarded staged firewall change .*remove of vif2\.0 by pid \d+, which is gone \(another install of it is recorded since\)/.test(l)), log.lines.join('\n'));
    await assertLiveIs(b, [keep, newer]);
    assert.deepEqual(readdirSync(pendingDir(env)), [], 'the stale removal went');
    // A removal of the install recorded now, orphaned: finished.
    orphan();
    const log2 = recordingLog();
    await commitStaged(b, env, log2);
    assert.ok(log2.lines.some((l) => /vif2\.0: finishing the removal of its rules staged by pid \d+, which is gone/.test(l)), log2.lines.join('\n'));
    await assertLiveIs(b, [keep]);
    assert.deepEqual(Object.keys(loadIndex(env, silentLogger).index.vifs), ['vif1.0']);
    assert.deepEqual(readdirSync(pendingDir(env)), []);
  });

  it('an orphaned removal: a live install of the name always wins, whatever the times; one withdrawn in the same commit leaves the removal standing; a record without a token (an older apply, an adoption) gets one at the next commit (found by an adversarial review)', async () => {
    const { b, keep, gone } = await twoGuests(env);
    const orphan = (at?: number): void => {
      const { index } = loadIndex(env, silentLogger);
      const change = { ...stageRemove(gone.name, env, index.vifs['vif2.0']?.token), stager: { pid: deadPid, start: '1', boot: 'x' }, ...(at !== undefined ? { at } : {}) };
      rmSync(pendingDir(env), { recursive: true, force: true });
      stage(change, undefined, env);
    };
    // Its time after the install's (a clock stepped back since, or a forged file): the install wins.
    orphan(Date.now() + 60_000);
    const newer = vif('vif2.0', 3);
    const live = install(newer, env);
    await commitStaged(b, env, silentLogger);
    assert.equal(loadIndex(env, silentLogger).index.vifs['vif2.0']?.token, live.token);
    await assertLiveIs(b, [keep, newer]);
    // A new install of the name withdrawn while the commit that takes the orphan runs.
    orphan();
    const withdrawn = install(vif('vif2.0', 4), env);
    const next = commitStaged(b, { ...env, XENNET_TEST_STALL_AT: 'firewall:staged-read@300' }, silentLogger);
    setTimeout(() => unstage(withdrawn.token, env), 50);
    await next;
    await assertLiveIs(b, [keep]);
    assert.deepEqual(Object.keys(loadIndex(env, silentLogger).index.vifs), ['vif1.0']);
    assert.deepEqual(readdirSync(pendingDir(env)), []);
    // A record without a token (written by an older apply): the next commit gives it one, and a
    // removal staged against it then outlives its stager too.
    const idxPath = join(dir, 'firewall', 'index.json');
    install(newer, env);
    await commitStaged(b, env, silentLogger);
    const { index } = loadIndex(env, silentLogger);
    const { token: _t, ...untokened } = index.vifs['vif2.0']!;
    rmSync(join(dir, 'firewall', 'index.journal'), { force: true });
    writeFileSync(idxPath, JSON.stringify({ ...index, vifs: { ...index.vifs, 'vif2.0': untokened } }));
    await commitStaged(b, env, silentLogger, { full: true });
    assert.equal(typeof loadIndex(env, silentLogger).index.vifs['vif2.0']?.token, 'string', 'given a token');
    orphan();
    await commitStaged(b, env, silentLogger);
    await assertLiveIs(b, [keep]);
  });

  it('a removal staged against an install that is no longer the one recorded (a new guest under the name committed meanwhile: the daemon stages an offline\'s removal without the lock) removes nothing (found by an adversarial review)', async () => {
    const { b, keep, gone } = await twoGuests(env);
    const stale = loadIndex(env, silentLogger).index.vifs[gone.name]!.token;
    const newer = vif('vif2.0', 3);
    install(newer, env);
    await commitStaged(b, env, silentLogger);
    stageRemove(gone.name, env, stale); // its stager alive
    const log = recordingLog();
    await commitStaged(b, env, log);
    assert.ok(log.lines.some((l) => /discarded staged firewall change .*remove of vif2\.0 by pid \d+: another install of it is recorded since it was staged/.test(l)), log.lines.join('\n'));
    await assertLiveIs(b, [keep, newer]);
    assert.deepEqual(readdirSync(pendingDir(env)), []);
    // The control: staged against the install recorded now, it removes it.
    const now = loadIndex(env, silentLogger).index.vifs[gone.name]!;
    stageRemove(gone.name, env, now.token, now.owner);
    await commitStaged(b, env, silentLogger);
    await assertLiveIs(b, [keep]);
    // The same guest installed again since (its policy followed): still the one removed.
    install(newer, env);
    await commitStaged(b, env, silentLogger);
    const first = loadIndex(env, silentLogger).index.vifs[gone.name]!;
    install(newer, env);
    await commitStaged(b, env, silentLogger);
    assert.notEqual(loadIndex(env, silentLogger).index.vifs[gone.name]!.token, first.token);
    stageRemove(gone.name, env, first.token, first.owner);
    await commitStaged(b, env, silentLogger);
    await assertLiveIs(b, [keep]);
  });

  it('a commit killed after its write-ahead is finished by the next one, which removes installs whose process is gone', async () => {
    const b = new ModelBackend();
    const keep = vif('vif1.0', 1);
    install(keep, env);
    await commitStaged(b, env, silentLogger);
    // A hook installs vif2.0 and dies after the eb table was changed, before ipv6/ipv4.
    install(vif('vif2.0', 2), env);
    b.beforeRestore = (t) => {
      if (t !== 'eb') throw new Error('killed');
    };
    await assert.rejects(commitStaged(b, env, silentLogger));
    b.beforeRestore = undefined;
    const idxPath = join(dir, 'firewall', 'index.json');
    const idx = JSON.parse(readFileSync(idxPath, 'utf8')) as { dirty: boolean; vifs: Record<string, { state: string; stager?: { pid: number } }> };
    assert.equal(idx.dirty, true, 'written ahead: dirty until confirmed');
    assert.equal(idx.vifs['vif2.0']?.state, 'installing');
    idx.vifs['vif2.0']!.stager!.pid = deadPid; // the hook is gone
    writeFileSync(idxPath, JSON.stringify(idx));
    rmSync(pendingDir(env), { recursive: true, force: true }); // and so is its staged file (discarded)
    const log = recordingLog();
    const r = await commitStaged(b, env, log);
    assert.ok(r.reconciled, 'the live rules were read');
    assert.ok(log.lines.some((l) => /removing the rules of vif2\.0: their install .* was never confirmed/.test(l)), log.lines.join('\n'));
    await assertLiveIs(b, [keep]);
    assert.equal(loadIndex(env, silentLogger).index.dirty, false);
  });

  it('a removal written ahead and never confirmed is finished by the next commit, also when a new install of the name is withdrawn meanwhile (found by an adversarial review)', async () => {
    const { b, keep, gone } = await twoGuests(env);
    // vif2.0 leaves; its commit dies after the write-ahead, and its staged change with it.
    stageRemove(gone.name, env);
    b.beforeRestore = () => {
      throw new Error('killed');
    };
    await assert.rejects(commitStaged(b, env, silentLogger));
    b.beforeRestore = undefined;
    rmSync(pendingDir(env), { recursive: true, force: true });
    assert.deepEqual(loadIndex(env, silentLogger).index.removing, ['vif2.0'], 'written ahead');
    // A new guest's install of the name is staged, and withdrawn (its hook gave up) while the
    // next commit runs, between its reading the staged changes and its write-ahead.
    install(vif('vif2.0', 3), env);
    const next = commitStaged(b, { ...env, XENNET_TEST_STALL_AT: 'firewall:staged-read@300' }, silentLogger);
    setTimeout(() => rmSync(pendingDir(env), { recursive: true, force: true }), 50);
    await next;
    await assertLiveIs(b, [keep]);
    const { index } = loadIndex(env, silentLogger);
    assert.deepEqual(Object.keys(index.vifs), ['vif1.0'], 'not adopted back');
    assert.equal(index.removing, undefined);
    assert.equal(index.dirty, false);
  });

  it('an unreadable index is set aside and rebuilt from the live rules: other guests keep theirs', async () => {
    const b = new ModelBackend();
    const a = vif('vif1.0', 1);
    install(a, env);
    await commitStaged(b, env, silentLogger);
    writeFileSync(join(dir, 'firewall', 'index.json'), '{"version": 2, "vifs": {"vif1.0": {"bri');
    const log = recordingLog();
    const c = vif('vif3.0', 3);
    install(c, env);
    await commitStaged(b, env, log);
    assert.ok(log.lines.some((l) => /firewall index .* is unreadable .*moved to .*index\.json\.corrupt-.*rebuilding it from the live rules/.test(l)), log.lines.join('\n'));
    await assertLiveIs(b, [a, c]);
    const { index } = loadIndex(env, silentLogger);
    assert.deepEqual(Object.keys(index.vifs).sort(), ['vif1.0', 'vif3.0'], 'vif1.0 adopted from the live rules');
    assert.deepEqual(index.vifs['vif1.0']?.owner, { domid: 1, devid: 0 }, 'owner from the Xen name');
    assert.ok(readdirSync(join(dir, 'firewall')).some((f) => f.startsWith('index.json.corrupt-')));
  });

  it('an unreadable staged file is discarded with a warning; the others commit; dead writers\' temp files are swept', async () => {
    const b = new ModelBackend();
    mkdirSync(pendingDir(env), { recursive: true });
    writeFileSync(join(pendingDir(env), '123-broken.json'), '{"op": "inst');
    writeFileSync(join(dir, 'firewall', `index.json.tmp-${deadPid}`), '{');
    install(vif('vif1.0'), env);
    const log = recordingLog();
    const r = await commitStaged(b, env, log);
    assert.equal(r.batch, 1);
    assert.ok(log.lines.some((l) => /discarded staged firewall change 123-broken\.json: it does not parse/.test(l)));
    assert.ok(!existsSync(join(dir, 'firewall', `index.json.tmp-${deadPid}`)), 'temp file swept');
  });

  it('removing a vif the index does not know reads the live rules and removes only its chains', async () => {
    const b = new ModelBackend();
    const a = vif('vif1.0', 1);
    const gone = vif('vif2.0', 2);
    install(a, env);
    install(gone, env);
    await commitStaged(b, env, silentLogger);
    rmSync(join(dir, 'firewall'), { recursive: true, force: true }); // the state is lost
    const t = stageRemove(ifn('vif2.0'), env);
    await commitStaged(b, env, silentLogger, { only: new Set([t.token]), full: true });
    await assertLiveIs(b, [a]);
  });
});
