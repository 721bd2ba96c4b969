/**
 * Which rule file may be absent (only the default path), and what any other unusable file is: an
 * error that names the path and says what to do, for the loader, the hook's cache, the hook and
 * the CLI.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, DEFAULT_RULES_PATH, loadPolicy, RuleFileError, rulesSource } from '../../src/config/load.js';
import { cachedPolicy, lastGoodPolicy, recordPolicy } from '../../src/config/policy-cache.js';
import { runDaemonMain } from '../../src/daemon/main.js';
import { PolicyHolder } from '../../src/daemon/policy-holder.js';
import { createHookFirewall } from '../../src/firewall/hook-firewall.js';
import { HookFailure, type VifConfig } from '../../src/hooks/vif-plan.js';
import { run } from '../../src/sys/exec.js';
import { silentLogger } from '../../src/sys/log.js';
import { ifn } from './lib/values.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

describe('rule file: which may be absent, and what an unusable one is', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'xnt-rulefile-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  /** A state directory of the test's own (the daemon's policy holder records the last good policy there). */
  const stateEnv = (): NodeJS.ProcessEnv => ({ XENNET_STATE_DIR: join(dir, 'holder-state') });

  const refuses = (file: string, absentOk: boolean, message: RegExp): void => {
    assert.throws(
      () => loadPolicy(file, { absentOk }),
      (e: unknown) => e instanceof RuleFileError && e.message.startsWith(`rule file ${file} `) && message.test(e.message) && /nothing was changed/.test(e.hint ?? '') && e.exitCode === 1,
      String(message),
    );
  };

  it('only the default path may be absent: --rules and XENNET_RULES name a file that must exist', () => {
    assert.deepEqual(rulesSource(undefined, {}), { file: DEFAULT_RULES_PATH, absentOk: true });
    assert.deepEqual(rulesSource(undefined, { XENNET_RULES: '' }), { file: DEFAULT_RULES_PATH, absentOk: true });
    assert.deepEqual(rulesSource(undefined, { XENNET_RULES: '/etc/xen/xenet.yaml' }), { file: '/etc/xen/xenet.yaml', absentOk: false });
    assert.deepEqual(rulesSource('/srv/r.yaml', { XENNET_RULES: '/etc/xen/other.yaml' }), { file: '/srv/r.yaml', absentOk: false });
    // Named explicitly, even the default path must exist.
    assert.deepEqual(rulesSource(DEFAULT_RULES_PATH, {}), { file: DEFAULT_RULES_PATH, absentOk: false });
  });

  it('a missing default file means the built-in defaults; a missing named file is an error', () => {
    const missing = join(dir, 'xenet.yaml');
    assert.deepEqual(loadPolicy(missing, { absentOk: true }), { file: missing, policy: { version: 1 }, fromFile: false });
    refuses(missing, false, /^rule file \S+ does not exist$/);
    // The default of the loader is the safe one: absent is an error unless the caller says otherwise.
    assert.throws(() => loadPolicy(missing), RuleFileError);
    const src = rulesSource(undefined, { XENNET_RULES: missing });
    assert.throws(() => loadPolicy(src.file, { absentOk: src.absentOk }), /does not exist/);
  });

  it('a link to nothing at the default path is an error, not "absent" (the loader and the hook\'s cache)', async () => {
    const link = join(dir, 'linked.yaml');
    symlinkSync(join(dir, 'not-mounted', 'xennet.yaml'), link);
    refuses(link, true, /^rule file \S+ is a link to \S+not-mounted\/xennet\.yaml, which does not exist$/);
    await assert.rejects(cachedPolicy({ file: link, absentOk: true }, { XENNET_STATE_DIR: join(dir, 'state-link') }), /is a link to .*, which does not exist/);
    assert.throws(() => new PolicyHolder({ file: link, absentOk: true }, silentLogger, stateEnv()), /is a link to .*, which does not exist/, 'the daemon does not start on it');
  });

  it('an empty file (or one of comments only) is an error at any path, the default included', () => {
    for (const [name, text] of [
      ['empty.yaml', ''],
      ['blank.yaml', '\n  \n\t\n'],
      ['comments.yaml', '# xennet rules\n   # nothing yet\n'],
    ]) {
      const f = join(dir, name!);
      writeFileSync(f, text!);
      refuses(f, true, /is empty$/);
      assert.throws(() => loadPolicy(f, { absentOk: true }), (e: unknown) => e instanceof RuleFileError && /write `version: 1` at least/.test(e.hint ?? ''));
    }
    writeFileSync(join(dir, 'min.yaml'), '# comment\nversion: 1\n');
    assert.equal(loadPolicy(join(dir, 'min.yaml')).fromFile, true, 'a file with a comment and version: 1 is valid');
  });

  it('a directory, a path through a file (ENOTDIR) and a FIFO are errors that say what they are', async () => {
    mkdirSync(join(dir, 'xennet.d'));
    refuses(join(dir, 'xennet.d'), true, /is a directory, not a file$/);
    writeFileSync(join(dir, 'plain'), 'version: 1\n');
    refuses(join(dir, 'plain', 'xennet.yaml'), true, /cannot be read: a component of its path is a file, not a directory$/);
    const fifo = join(dir, 'fifo.yaml');
    assert.equal((await run('mkfifo', [fifo])).code, 0);
    // Never opened: a read would wait for a writer forever.
    refuses(fifo, false, /is not a regular file \(a FIFO, socket or device\)$/);
  });

  it('a file that exists must be valid: the default path is not an excuse', () => {
    writeFileSync(join(dir, 'bad.yaml'), 'version: 1\nguests:\n  web: { inbound: maybe }\n');
    assert.throws(() => loadPolicy(join(dir, 'bad.yaml'), { absentOk: true }), (e: unknown) => e instanceof ConfigError && !(e instanceof RuleFileError) && /is invalid/.test(e.message));
  });

  it("the hook's policy cache: defaults only for the default path; a file that turns invalid or goes keeps the last good policy, as the daemon does; an apply of the defaults ends it", async () => {
    const env = { XENNET_STATE_DIR: join(dir, 'state') };
    const f = join(dir, 'cached.yaml');
    const good = { version: 1, guests: { web: { inbound: 'drop' } } };
    // Never a good one: refused (named and missing), the defaults (the default path, absent).
    await assert.rejects(cachedPolicy({ file: f, absentOk: false }, env), (e: unknown) => e instanceof RuleFileError && /does not exist/.test(e.message));
    assert.deepEqual(await cachedPolicy({ file: f, absentOk: true }, env), { policy: { version: 1 }, fromFile: false, cached: true });
    writeFileSync(f, 'version: 1\nguests:\n  web: { inbound: drop }\n');
    assert.equal((await cachedPolicy({ file: f, absentOk: false }, env)).fromFile, true);
    writeFileSync(f, 'version: 1\nguests:\n  web: { inbound: maybe }\n');
    const invalid = await cachedPolicy({ file: f, absentOk: false }, env);
    assert.deepEqual(invalid.policy, good, 'invalid: the last good policy');
    assert.match(invalid.kept?.problem ?? '', /inbound/);
    rmSync(f);
    for (const absentOk of [false, true]) {
      const gone = await cachedPolicy({ file: f, absentOk }, env);
      assert.deepEqual(gone.policy, good, `deleted (absentOk ${absentOk}): the last good policy`);
      assert.ok(gone.kept, 'and says so');
    }
    assert.deepEqual((await lastGoodPolicy(f, env))?.policy, good);
    // An apply (or the daemon's start) with no file records the defaults: then they are in force.
    recordPolicy({ file: f, policy: { version: 1 }, fromFile: false }, env);
    assert.deepEqual(await cachedPolicy({ file: f, absentOk: true }, env), { policy: { version: 1 }, fromFile: false, cached: true });
    assert.equal(await lastGoodPolicy(f, env), undefined);
    await assert.rejects(cachedPolicy({ file: join(dir, 'plain', 'x.yaml'), absentOk: true }, env), /a component of its path is a file/);
  });

  it('the vif hook fails the guest (hotplug-error) when XENNET_RULES names a missing file, before touching anything', async () => {
    const env = { XENNET_STATE_DIR: join(dir, 'hookstate'), XENNET_RULES: join(dir, 'xenet.yaml') };
    const fw = createHookFirewall(env, silentLogger);
    const cfg = { device: ifn('vif5.0'), name: ifn('vif5.0'), ips: [], identity: { source: 'name', elsewhere: false, warnings: [] }, namesKey: '', domid: 5, devid: 0 } satisfies VifConfig;
    await assert.rejects(
      fw.prepare(cfg, ifn('xenbr0')),
      (e: unknown) => e instanceof HookFailure && e.message === `rule file ${env.XENNET_RULES} does not exist, so vif5.0 cannot be firewalled` && /start the guest again$/.test(e.hint ?? ''),
    );
  });

  it('the daemon: a named missing or empty file stops it from starting; once running, a file that goes keeps the policy in force', () => {
    const missing = join(dir, 'daemon-missing.yaml');
    assert.throws(() => new PolicyHolder(rulesSource(undefined, { XENNET_RULES: missing }), silentLogger, stateEnv()), (e: unknown) => e instanceof RuleFileError && /does not exist/.test(e.message));
    writeFileSync(join(dir, 'daemon-empty.yaml'), '');
    assert.throws(() => new PolicyHolder({ file: join(dir, 'daemon-empty.yaml'), absentOk: true }, silentLogger, stateEnv()), /is empty/);
    const f = join(dir, 'daemon.yaml');
    writeFileSync(f, 'version: 1\nguests:\n  web: { inbound: drop, isolation: true }\n');
    const held = new PolicyHolder(rulesSource(undefined, { XENNET_RULES: f }), silentLogger, stateEnv());
    rmSync(f);
    assert.equal(held.reload('SIGHUP'), false);
    assert.equal(held.policy.guests?.['web']?.inbound, 'drop', 'the policy in force stays');
    assert.deepEqual([held.state().state, held.state().problem], ['kept', 'does not exist']);
    writeFileSync(f, '');
    assert.equal(held.reload('SIGHUP'), false);
    assert.deepEqual([held.state().state, held.state().problem, held.policy.guests?.['web']?.isolation], ['kept', 'is empty', true]);
  });

  it('the last good policy: a file replaced while it was read is not recorded; the record stands only as its text parses; an apply of the defaults is the daemon\'s policy too', async () => {
    const env = { XENNET_STATE_DIR: join(dir, 'lastgood') };
    const f = join(dir, 'lastgood.yaml');
    writeFileSync(f, 'version: 1\nguests:\n  web: { inbound: accept }\n');
    const loaded = loadPolicy(f);
    // Replaced (an invalid file renamed into place) between the read and the record.
    writeFileSync(`${f}.new`, 'version: 1\nguests:\n  web: { inbound: maybe }\n');
    renameSync(`${f}.new`, f);
    recordPolicy(loaded, env);
    await assert.rejects(cachedPolicy({ file: f, absentOk: false }, env), /inbound/, 'no policy of the file before stands for the one there now');
    // A record whose policy was edited by hand: what stands in for the file is its recorded text, parsed again.
    writeFileSync(f, 'version: 1\nguests:\n  web: { inbound: drop }\n');
    recordPolicy(loadPolicy(f), env);
    const path = join(env.XENNET_STATE_DIR, 'firewall', 'policy-cache.json');
    const record = JSON.parse(readFileSync(path, 'utf8')) as { policy: unknown; text: string };
    writeFileSync(path, JSON.stringify({ ...record, policy: { version: 1, guests: { web: { inbound: 'maybe' } } } }));
    writeFileSync(f, 'version: 1\nguests:\n  web: { inbound: nope }\n');
    assert.equal((await cachedPolicy({ file: f, absentOk: false }, env)).policy.guests?.['web']?.inbound, 'drop');
    writeFileSync(path, JSON.stringify({ ...record, text: 'version: 1\nguests:\n  web: { inbound: maybe }\n' }));
    await assert.rejects(cachedPolicy({ file: f, absentOk: false }, env), /is invalid/, 'a recorded text that does not parse stands for nothing');
    // The daemon: a file gone keeps its policy, until an apply installs the defaults.
    writeFileSync(f, 'version: 1\nguests:\n  web: { inbound: drop }\n');
    const held = new PolicyHolder({ file: f, absentOk: true }, silentLogger, env);
    rmSync(f);
    held.reload('it changed');
    assert.equal(held.policy.guests?.['web']?.inbound, 'drop', 'gone: kept');
    held.reload('applied', { applied: true });
    assert.deepEqual(held.policy, { version: 1 }, 'an apply of the defaults: the defaults');
    // The daemon started on a file that cannot be used: on the last good policy when one is recorded, else not at all.
    writeFileSync(f, 'version: 1\nguests:\n  web: { inbound: drop }\n');
    recordPolicy(loadPolicy(f), env);
    writeFileSync(f, 'version: 1\nguests:\n  web: { inbound: maybe }\n');
    const started = new PolicyHolder({ file: f, absentOk: true }, silentLogger, env);
    assert.deepEqual([started.state().state, started.policy.guests?.['web']?.inbound], ['kept', 'drop']);
    assert.throws(() => new PolicyHolder({ file: f, absentOk: true }, silentLogger, { XENNET_STATE_DIR: join(dir, 'no-record') }), /is invalid/);
  });

  it('`xennet daemon` with XENNET_RULES naming a missing file exits 1 without creating its run directory', async () => {
    const env = { XENNET_RULES: join(dir, 'xenet.yaml'), XENNET_RUN_DIR: join(dir, 'run'), XENNET_STATE_DIR: join(dir, 'daemonstate'), XENNET_SYSLOG: '0', XENNET_FIREWALL: 'off' };
    assert.equal(await runDaemonMain(env, { prepare: false }), 1);
    assert.equal(existsSync(env.XENNET_RUN_DIR), false);
  });

  it('the CLI: check and plan exit 1 on a missing named file (never "valid") and on an empty one', async () => {
    const missing = join(dir, 'xenet.yaml');
    const env = { ...process.env, XENNET_STATE_DIR: join(dir, 'clistate'), XENNET_RULES: '' };
    const check = await run('node', [cli, 'check', missing], { env });
    assert.equal(check.code, 1, check.stdout + check.stderr);
    assert.doesNotMatch(check.stdout, /valid/);
    assert.match(check.stderr, new RegExp(`^xennet: error: rule file ${missing} does not exist\\n  hint: check the path given by --rules or XENNET_RULES`));
    const viaEnv = await run('node', [cli, 'check', '--json'], { env: { ...env, XENNET_RULES: missing } });
    assert.equal(viaEnv.code, 1);
    assert.equal((JSON.parse(viaEnv.stdout) as { error: { message: string } }).error.message, `rule file ${missing} does not exist`);
    const plan = await run('node', [cli, 'plan', '--offline', '--rules', missing, '--vif', 'vif5.0=web01'], { env });
    assert.equal(plan.code, 1, plan.stdout + plan.stderr);
    assert.match(plan.stderr, /does not exist/);
    writeFileSync(join(dir, 'empty2.yaml'), '');
    const empty = await run('node', [cli, 'check', join(dir, 'empty2.yaml')], { env });
    assert.equal(empty.code, 1);
    assert.match(empty.stderr, /is empty\n {2}hint: write `version: 1` at least/);
  });
});
