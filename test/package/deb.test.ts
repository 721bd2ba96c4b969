/**
 * The Debian package as built by `npm run deb`'s builder: lintian reports nothing (each tag the
 * package overrides is explained in packaging/lintian-overrides), the layout is Debian's, it
 * depends on Debian's packages only, and the daemon's unit scores 4.0 or lower with
 * `systemd-analyze security --offline`. Installing it is the system suite's part.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildDeb, type BuiltDeb } from '../../src/package/build-deb.js';
import { run } from '../../src/sys/exec.js';

describe('the Debian package (npm run deb)', function () {
  this.timeout(300_000);
  let dir: string;
  let deb: BuiltDeb;
  let tree: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'xnt-deb-'));
    deb = await buildDeb(join(dir, 'out'));
    tree = join(dir, 'tree');
    const x = await run('dpkg-deb', ['-x', deb.file, tree]);
    assert.equal(x.code, 0, x.stderr);
  });

  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('is named xennet_<version>-1_<architecture>.deb after package.json and dpkg', async () => {
    const version = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
    const arch = (await run('dpkg', ['--print-architecture'])).stdout.trim();
    assert.equal(deb.file.split('/').pop(), `xennet_${version}-1_${arch}.deb`);
  });

  it('lintian: no error, no warning, nothing unexplained (pedantic and info tags included)', async () => {
    const r = await run('lintian', ['--pedantic', '--display-info', '--fail-on', 'error,warning,info,pedantic', deb.file], { timeoutMs: 240_000 });
    const tags = r.stdout.split('\n').filter((l) => /^[EWIPX]: /.test(l));
    assert.deepEqual(tags, [], r.stdout + r.stderr);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  it('puts everything where Debian expects it', async () => {
    const list = (await run('dpkg-deb', ['-c', deb.file])).stdout;
    for (const path of [
      './usr/bin/xennet -> ../lib/xennet/xennet.mjs',
      './usr/lib/xennet/xennet.mjs',
      './etc/xen/scripts/vif-xennet',
      './etc/xen/scripts/network-xennet',
      './lib/systemd/system/xennet.service',
      './lib/systemd/system/xennet-bridge.service',
      './usr/share/man/man8/xennet.8.gz',
      './usr/share/man/man5/xennet.yaml.5.gz',
      './usr/share/bash-completion/completions/xennet',
      './usr/share/xennet/xennet.schema.json',
      './usr/share/doc/xennet/examples/xennet.yaml',
      './usr/share/doc/xennet/copyright',
      './usr/share/doc/xennet/changelog.Debian.gz',
    ]) assert.ok(list.includes(path), `${path} in the package`);
    assert.doesNotMatch(list, /\.ts\b|\.map\b|node_modules\/(typescript|mocha|esbuild|eslint)/, 'no sources, maps or build tools');
    const conffiles = (await run('dpkg-deb', ['-I', deb.file, 'conffiles'])).stdout.trim().split('\n').sort();
    assert.deepEqual(conffiles, ['/etc/xen/scripts/network-xennet', '/etc/xen/scripts/vif-xennet'], 'what is under /etc is a conffile');
  });

  it('depends on Debian\'s own packages only, and on a Node.js of Debian 12 or Ubuntu 24.04', async () => {
    const depends = (await run('dpkg-deb', ['-f', deb.file, 'Depends'])).stdout.trim().split(', ');
    assert.ok(depends.includes('nodejs (>= 18.19)'), depends.join(', '));
    assert.ok(depends.includes('nftables'), 'the default backend\'s program');
    const recommends = (await run('dpkg-deb', ['-f', deb.file, 'Recommends'])).stdout.trim().split(', ');
    assert.deepEqual(recommends, ['iptables', 'ebtables', 'ipset'], 'the xtables backend\'s programs');
    for (const d of [...depends, ...recommends]) {
      const name = d.split(' ')[0]!;
      const known = await run('apt-cache', ['show', '--no-all-versions', name]);
      assert.equal(known.code, 0, `${name} is a Debian package`);
    }
  });

  it('xennet.service: exposure 4.0 or lower (systemd-analyze security --offline), Documentation is the man page', async () => {
    const unit = join(tree, 'lib/systemd/system/xennet.service');
    const r = await run('systemd-analyze', ['security', '--offline=true', '--threshold=40', unit]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const level = Number(/Overall exposure level for xennet\.service: ([\d.]+)/.exec(r.stdout)?.[1]);
    assert.ok(level <= 4.0, `exposure ${level}`);
    assert.match(readFileSync(unit, 'utf8'), /^Documentation=man:xennet\(8\)$/m);
  });

  it('the bundled CLI runs from the package tree alone (no node_modules of the worktree)', async () => {
    const r = await run(process.execPath, [join(tree, 'usr/lib/xennet/xennet.mjs'), 'check', join(tree, 'usr/share/doc/xennet/examples/xennet.yaml')], { cwd: tree });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /valid \(3 guests\)/);
  });

  it('builds from a source tree without .git too, dated by SOURCE_DATE_EPOCH', async () => {
    const root = fileURLToPath(new URL('../../../', import.meta.url));
    const tree2 = join(dir, 'export');
    mkdirSync(tree2);
    for (const d of ['package.json', 'README.md', 'docs', 'examples', 'packaging', 'src', 'dist']) cpSync(join(root, d), join(tree2, d), { recursive: true, filter: (f) => !f.includes('/dist/deb') });
    symlinkSync(join(root, 'node_modules'), join(tree2, 'node_modules'));
    const r = await run(process.execPath, [join(tree2, 'dist/src/package/build-deb.js')], { cwd: tree2, env: { ...process.env, SOURCE_DATE_EPOCH: '1700000000' }, timeoutMs: 240_000 });
    assert.equal(r.code, 0, r.stderr);
    const file = r.stdout.trim();
    const x = join(dir, 'export-x');
    assert.equal((await run('dpkg-deb', ['-x', file, x])).code, 0);
    const changelog = gunzipSync(readFileSync(join(x, 'usr/share/doc/xennet/changelog.Debian.gz'))).toString();
    assert.match(changelog, /Built from the xennet source tree \(not a git checkout\)/);
    assert.match(changelog, /Tue, 14 Nov 2023 22:13:20 \+0000/);
  });
});
