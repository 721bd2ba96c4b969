/**
 * The command line's own rules, checked on the built CLI (each call is refused or answered before
 * anything is read from or done to the host).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../../src/sys/exec.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const xennet = (...args: string[]) => run(process.execPath, [cli, ...args], { timeoutMs: 30_000 });

describe('command line', function () {
  this.timeout(60_000);

  it('--version is the program\'s only: after a command it is a usage error', async function () {
    const top = await xennet('--version');
    assert.equal(top.code, 0);
    assert.match(top.stdout, /^\d+\.\d+\.\d+\n$/);
    for (const args of [['status', '--version'], ['bridge', 'start', '--version'], ['plan', '--version']]) {
      const r = await xennet(...args);
      assert.equal(r.code, 64, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /usage error: Unknown argument: version/);
    }
  });

  it('completion --help says what the command does (not the script)', async function () {
    const r = await xennet('completion', '--help');
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^xennet completion\n\nPrint a bash\/zsh completion script/);
    assert.doesNotMatch(r.stdout, /begin-xennet-completions/);
    assert.match((await xennet('completion')).stdout, /begin-xennet-completions/, 'the script itself still comes without --help');
  });

  it('--vif without --offline is a usage error, not a live plan that ignores it', async function () {
    const r = await xennet('plan', '--vif', 'vif5.0=web01');
    assert.equal(r.code, 64, r.stdout + r.stderr);
    assert.match(r.stderr, /--vif describes a made-up vif for --offline/);
    assert.equal(r.stdout, '', 'nothing was planned');
  });

  it('an offline plan speaks of the --vif given, not of "this host"', async function () {
    const dir = mkdtempSync(join(tmpdir(), 'xnt-cli-'));
    try {
      const rules = join(dir, 'xennet.yaml');
      writeFileSync(rules, 'version: 1\nguests:\n  web01:\n    inbound: drop\n  db01:\n    inbound: drop\n');
      const named = await xennet('plan', '--offline', '--json', '--rules', rules, '--vif', 'vif5.0=web01');
      const w = (JSON.parse(named.stdout) as { warnings: string[] }).warnings;
      assert.ok(w.includes('guest db01 is in the rule file but is named by no --vif'), w.join('\n'));
      assert.ok(!w.some((x) => x.includes('this host')), w.join('\n'));
      const all = await xennet('plan', '--offline', '--json', '--rules', rules);
      assert.ok(!(JSON.parse(all.stdout) as { warnings: string[] }).warnings.some((x) => /no vif|no --vif|this host/.test(x)), 'without --vif every guest has one made up');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
