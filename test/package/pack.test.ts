/**
 * The npm tarball works after a global install into a fresh prefix: the bin runs, the hooks'
 * launchers load, and the dry parts (check, schema, offline plan, install-hooks --dry-run) work.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../../src/sys/exec.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

describe('npm pack + global install', function () {
  this.timeout(300_000);
  let dir: string;
  let bin: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'xnt-pack-'));
    const pack = await run('npm', ['pack', '--pack-destination', dir, '--silent'], { cwd: root, timeoutMs: 120_000 });
    assert.equal(pack.code, 0, pack.stderr);
    const tarball = join(dir, pack.stdout.trim().split('\n').pop()!);
    const install = await run('npm', ['install', '--global', '--prefix', join(dir, 'prefix'), '--no-audit', '--no-fund', tarball], { cwd: dir, timeoutMs: 240_000 });
    assert.equal(install.code, 0, install.stderr);
    bin = join(dir, 'prefix', 'bin', 'xennet');
  });

  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('xennet --version prints the package version', async () => {
    const r = await run(bin, ['--version']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.trim(), /^\d+\.\d+\.\d+$/);
  });

  it('the dry parts work from the installed package', async () => {
    const example = join(dir, 'prefix', 'lib', 'node_modules', 'xennet', 'examples', 'xennet.yaml');
    const check = await run(bin, ['check', example]);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /valid \(3 guests\)/);
    const plan = await run(bin, ['plan', '--offline', '--rules', example, '--vif', 'vif5.0=web01']);
    assert.equal(plan.code, 2, plan.stderr);
    assert.match(plan.stdout, /\+ nftables XN-S-vif5\.0: ip saddr 192\.168\.0\.5 return/, 'the default backend');
    const schema = await run(bin, ['schema']);
    assert.equal(JSON.parse(schema.stdout).type, 'object');
    const hooks = await run(bin, ['install-hooks', '--dir', join(dir, 'scripts'), '--unit-dir', join(dir, 'systemd'), '--dry-run']);
    assert.match(hooks.stdout, /would write .*scripts\/vif-xennet/);
  });

  it('installed hook launchers load xennet', async () => {
    // Its list of written files goes to the state directory: a temporary one, never this machine's.
    const env = { ...process.env, XENNET_STATE_DIR: join(dir, 'state') };
    assert.equal((await run(bin, ['install-hooks', '--dir', join(dir, 'scripts'), '--unit-dir', join(dir, 'systemd')], { env })).code, 0);
    assert.ok(existsSync(join(dir, 'state', 'installed-files.json')), 'install-hooks recorded what it wrote');
    // Its run and state directories are temporary ones too: a hook run here must start no daemon
    // on this machine's own.
    const r = await run(join(dir, 'scripts', 'vif-xennet'), ['explode'], { env: { ...process.env, XENNET_SYSLOG: '0', XENNET_STATE_DIR: join(dir, 'state'), XENNET_RUN_DIR: join(dir, 'run') } });
    assert.equal(existsSync(join(dir, 'run', 'daemon.pid')), false, 'a wrong command starts no daemon');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /vif-xennet: error: invalid command "explode"/);
    const n = await run(join(dir, 'prefix', 'lib', 'node_modules', 'xennet', 'hooks-bin', 'network-xennet'), ['bogus']);
    assert.match(n.stderr, /network-xennet: error: unknown command "bogus"/);
  });
});
