import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { run } from '../../src/sys/exec.js';
import { daemonExpectation } from '../../src/status/daemon-expected.js';
import { fileURLToPath } from 'node:url';
import { parseHookRequest } from '../../src/daemon/hook-request.js';
import { vifClientScript } from '../../src/hooks/vif-client.js';
import { DAEMON_NODE_FLAGS } from '../../src/daemon/paths.js';
import { unitText } from '../../src/hooks/install.js';

const req = (...fields: string[]): Buffer => Buffer.from(fields.map((f) => `${f}\0`).join(''));

describe('daemon: hook requests and the client', () => {
  it('status expects a daemon that is not there, or that does not answer, only where one should be', () => {
    const base = { unitEnabled: false, autostartOff: false } as const;
    assert.deepEqual(daemonExpectation({ ...base, answered: 'yes', pidFile: { pid: 5, alive: true } }), {});
    assert.deepEqual(daemonExpectation({ ...base, answered: 'none' }), {}, 'never started (no hook yet, no unit): nothing missing');
    assert.match(daemonExpectation({ ...base, answered: 'silent', pidFile: { pid: 5, alive: true } }).problem ?? '', /^the xennet daemon \(pid 5\) took the request and did not answer within 10 s .*Kill it \(the next hook starts a new one\)$/);
    assert.match(daemonExpectation({ ...base, unitEnabled: true, answered: 'silent' }).problem ?? '', /Run `systemctl restart xennet`$/);
    assert.match(daemonExpectation({ ...base, answered: 'none', pidFile: { pid: 7, alive: false } }).problem ?? '', /^the xennet daemon \(pid 7\) ended without being stopped/);
    assert.match(daemonExpectation({ ...base, unitEnabled: true, answered: 'none' }).problem ?? '', /^xennet\.service is enabled, but no daemon runs/);
    const off = daemonExpectation({ ...base, unitEnabled: true, autostartOff: true, answered: 'none', pidFile: { pid: 7, alive: false } });
    assert.equal(off.problem, undefined, 'autostart.off: no daemon is what the operator asked for');
    assert.match(off.note ?? '', /autostart\.off/);
  });

  it('the supervisor of a daemon a hook started: a daemon that keeps dying at its start is run three times, each end said with its cause, then given up', async function () {
    this.timeout(20_000);
    const supervise = /^supervise='([^']*)'$/m.exec(vifClientScript())?.[1];
    assert.ok(supervise, 'the supervisor script is in the client');
    const dir = mkdtempSync(join(tmpdir(), 'xnt-supervise-'));
    try {
      // A "node" that dies at once the way a crashing daemon does (exit 70).
      const node = join(dir, 'node');
      writeFileSync(node, '#!/bin/bash\necho started >> "${0%/*}/starts"\nexit 70\n');
      chmodSync(node, 0o755);
      const r = await run('bash', ['-c', supervise, 'xennet-daemon-supervisor', node, '/nonexistent/cli.js', dir], { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', XENNET_SYSLOG: '0' }, timeoutMs: 15_000 });
      assert.equal(r.code, 70, r.stderr);
      assert.equal(readFileSync(join(dir, 'starts'), 'utf8'), 'started\n'.repeat(3));
      const lines = r.stderr.trim().split('\n').filter((l) => l.includes('xennet-daemon-supervisor'));
      assert.equal(lines.length, 3, r.stderr);
      assert.match(lines[0]!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ xennet-daemon-supervisor: the daemon \(pid \d+\) ended \(exit code 70\); running it again$/);
      assert.match(lines[2]!, /: the daemon \(pid \d+\) ended \(exit code 70\), the third time in a row within 10 s of its start: not running it again /);
      // A syslog that does not answer holds up nothing (a logger that hangs for 20 s).
      const bin = join(dir, 'bin');
      mkdirSync(bin);
      writeFileSync(join(bin, 'logger'), '#!/bin/bash\necho $$ >> "${0%/*}/pids"\necho "$*" >> "${0%/*}/logged"\nexec sleep 20\n');
      chmodSync(join(bin, 'logger'), 0o755);
      const t0 = performance.now();
      const slow = await run('bash', ['-c', supervise, 'xennet-daemon-supervisor', node, '/nonexistent/cli.js', dir], { env: { PATH: `${bin}:${process.env['PATH'] ?? '/usr/bin:/bin'}` }, timeoutMs: 15_000 });
      assert.equal(slow.code, 70, slow.stderr);
      assert.ok(performance.now() - t0 < 8000, `three restarts took ${Math.round(performance.now() - t0)} ms`);
      assert.match(readFileSync(join(bin, 'logged'), 'utf8'), /-t xennet-daemon -p daemon\.warning -- the daemon \(pid \d+\) ended \(exit code 70\); running it again/);
    } finally {
      // The supervisor's loggers run in the background, each its own `sleep 20` once it wrote its
      // line: on a busy machine the last may start after the supervisor ended. Each of the three
      // is waited for (at most 10 s), then ended, before the directory goes.
      const logged = join(dir, 'bin', 'logged');
      for (let waited = 0; waited < 10_000 && existsSync(join(dir, 'bin')) && (existsSync(logged) ? readFileSync(logged, 'utf8').split('\n').length - 1 : 0) < 3; waited += 50) await new Promise((r) => setTimeout(r, 50));
      const pids = existsSync(join(dir, 'bin', 'pids')) ? readFileSync(join(dir, 'bin', 'pids'), 'utf8').split('\n').filter((l) => /^\d+$/.test(l)) : [];
      for (const pid of pids) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          /* ended */
        }
      }
      rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
    }
  });

  it('parses what the bash client writes, keeping only a vif-script call\'s variables', () => {
    const r = parseHookRequest(req('xennet-hook 1', '1764470400.123456', '2', 'online', 'type_if=vif', 'vif=vif5.0', 'XENBUS_PATH=backend/vif/5/0', 'LD_PRELOAD=/evil.so', 'XENNET_STATE_DIR=/tmp/s'));
    assert.deepEqual(r, { startedAt: 1764470400123, argv: ['online', 'type_if=vif'], env: { vif: 'vif5.0', XENBUS_PATH: 'backend/vif/5/0', XENNET_STATE_DIR: '/tmp/s' } });
  });

  it('refuses what it cannot trust: other versions, bad counts, truncation, oversize', () => {
    assert.throws(() => parseHookRequest(req('xennet-hook 2', '1', '0')), /version 1/);
    assert.throws(() => parseHookRequest(req('xennet-hook 1', 'now', '0')), /start time/);
    assert.throws(() => parseHookRequest(req('xennet-hook 1', '1764470400', '99')), /argument count/);
    assert.throws(() => parseHookRequest(req('xennet-hook 1', '1764470400', '3', 'online')), /truncated/);
    assert.throws(() => parseHookRequest(req('xennet-hook 1', '1764470400', '0', 'no-equals')), /environment entry/);
    assert.throws(() => parseHookRequest(Buffer.alloc(70_000)), /at most/);
  });

  it('hooks-bin/vif-xennet is the generated client; the installed one names this installation', () => {
    const repo = readFileSync(fileURLToPath(new URL('../../../hooks-bin/vif-xennet', import.meta.url)), 'utf8');
    assert.equal(repo, vifClientScript(), 'regenerate hooks-bin/vif-xennet from src/hooks/vif-client.ts');
    const installed = vifClientScript({ entry: "/opt/x'y/vif-entry.mjs", node: '/usr/bin/node' });
    assert.match(installed, /exec '\/usr\/bin\/node' -- '\/opt\/x'\\''y\/vif-entry\.mjs' "\$\{args\[@\]\}"/, 'paths are quoted for the shell');
    const withCli = vifClientScript({ entry: '/usr/lib/xennet/vif-entry.mjs', cli: "/opt/x'y/xennet.mjs", node: '/usr/bin/node' });
    // The daemon it starts runs as the unit's does (same Node flags), from this installation.
    assert.match(withCli, /local cli='\/opt\/x'\\''y\/xennet\.mjs'\n/);
    assert.match(withCli, /setsid \/bin\/bash -c "\$supervise" xennet-daemon-supervisor '\/usr\/bin\/node' "\$cli" "\$run" /);
    assert.match(withCli, /\n {2}"\$1" --max-semi-space-size=2 --expose-gc -- "\$2" daemon 5>&- &\n/, 'the supervisor runs the daemon with the unit\'s flags');
    assert.ok(unitText().includes(`${DAEMON_NODE_FLAGS.join(' ')} `), 'the unit and the hook start the daemon with the same flags');
    assert.match(vifClientScript(), /local cli=.*\/\.\.\/dist\/src\/cli\/main\.js"\n/, 'the repository\'s hook starts the repository\'s daemon');
    assert.match(unitText(), /^ExecStart=\/\S+ --max-semi-space-size=2 --expose-gc \/\S+\/cli\/main\.js daemon$/m);
    assert.match(unitText(), /^ExecReload=\/\S+ \/\S+\/cli\/main\.js daemon --reload$/m, "reload over the socket, never a signal");
    assert.match(unitText(), /^Restart=on-failure$/m);
  });
});

describe('daemon: the CLI side of the socket', () => {
  it('reads an answer whose characters of several bytes straddle its chunks', async () => {
    const { createServer } = await import('node:net');
    const { askDaemon } = await import('../../src/daemon/client.js');
    const dir = mkdtempSync(join(tmpdir(), 'xnt-ask-'));
    const text = 'guest ä port ✓ '.repeat(20_000);
    const answer = Buffer.from(`${JSON.stringify({ ok: true, result: { rendered: { text } } })}\n`);
    // Split inside the first 'ä' (two bytes) and inside a '✓' (three bytes), written apart.
    const first = answer.indexOf(Buffer.from('ä')) + 1;
    const second = answer.indexOf(Buffer.from('✓'), 70_000) + 2;
    const server = createServer((sock) => {
      sock.once('data', () => {
        sock.write(answer.subarray(0, first), () =>
          setTimeout(() => sock.write(answer.subarray(first, second), () => setTimeout(() => sock.end(answer.subarray(second)), 20)), 20),
        );
      });
    });
    try {
      await new Promise<void>((r) => server.listen(join(dir, 'daemon.sock'), r));
      const a = await askDaemon({ XENNET_RUN_DIR: dir }, { op: 'status' }, 5000);
      assert.equal(a?.ok, true);
      assert.equal((a as { result: { rendered: { text: string } } }).result.rendered.text, text);
    } finally {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
