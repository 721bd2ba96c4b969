/** The switch that keeps hooks from starting a daemon, and waiting for a start in progress. */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clearAutostartOff, stopAutostart } from '../../src/daemon/autostart.js';
import { run, start } from '../../src/sys/exec.js';

describe('autostart.off', function () {
  this.timeout(30_000);
  let dir: string;
  let env: NodeJS.ProcessEnv;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'xnt-autostart-'));
    env = { XENNET_RUN_DIR: join(dir, 'run') };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('stopAutostart sets the switch, then waits for a hook that holds the start lock (a daemon being started is then in its pid file)', async () => {
    const runDir = join(dir, 'run');
    await run('mkdir', ['-m', '0700', runDir]);
    // A hook starting a daemon: it holds autostart.lock for a while.
    const hook = start('flock', [join(runDir, 'autostart.lock'), 'sleep', '1.5']);
    for (let i = 0; i < 100 && (await run('flock', ['-n', join(runDir, 'autostart.lock'), 'true'])).code === 0; i++) await new Promise((r) => setTimeout(r, 20));
    const t0 = Date.now();
    await stopAutostart(env, 'set by a test');
    assert.ok(Date.now() - t0 >= 1000, `returned after ${Date.now() - t0} ms, before the start in progress ended`);
    assert.equal(readFileSync(join(runDir, 'autostart.off'), 'utf8'), 'set by a test\n');
    hook.kill();
    clearAutostartOff(env);
    assert.equal(existsSync(join(runDir, 'autostart.off')), false);
  });

  it('an operator\'s switch set before stays as it was', async () => {
    const runDir = join(dir, 'run');
    await run('mkdir', ['-m', '0700', runDir]);
    writeFileSync(join(runDir, 'autostart.off'), 'the operator\'s\n');
    assert.deepEqual(await stopAutostart(env, 'set by a test'), { wasSet: true });
    assert.equal(readFileSync(join(runDir, 'autostart.off'), 'utf8'), 'the operator\'s\n');
  });
});
