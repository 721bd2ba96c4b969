/**
 * `npm run deb`: builds dist/deb/xennet_<version>-1_<arch>.deb from the built worktree, offline.
 *
 * Everything the package runs is in it: esbuild bundles the CLI and the hooks' entries (every npm
 * dependency inside, code-split so a hook loads only what it needs) into /usr/lib/xennet; the
 * packages loaded at run time by name (netlink with this architecture's native addon, and what it
 * requires, and yaml) are copied under /usr/lib/xennet/node_modules. The package is
 * architecture-dependent because of that addon (netlink's N-API binding: rtnetlink sockets).
 *
 *   /usr/bin/xennet -> /usr/lib/xennet/xennet.mjs        the CLI (#!/usr/bin/node)
 *   /etc/xen/scripts/{vif,network}-xennet                the hooks, next to Xen's (conffiles)
 *   /lib/systemd/system/xennet{,-bridge}.service         the daemon and the boot takeover
 *   /usr/lib/modules-load.d/xennet.conf                  br_netfilter at boot
 *   /usr/share/man/man8/xennet.8.gz, man5/xennet.yaml.5.gz  written from the CLI and the schema
 *   /usr/share/bash-completion/completions/xennet        from the CLI
 *   /usr/share/xennet/xennet.schema.json, /usr/share/doc/xennet/examples/xennet.yaml
 *   /usr/share/doc/xennet/{copyright,changelog.Debian.gz,README.md,*.md}
 *   /usr/share/lintian/overrides/xennet                  each remaining lintian tag, explained
 */
import { chmodSync, cpSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { commands } from '../cli/commands/index.js';
import { hookText, HOOKS } from '../hooks/install.js';
import { run } from '../sys/exec.js';
import { bridgeUnitText } from '../bridge/unit.js';
import { changelogText, controlText, copyrightText, postinstText, postrmText, prermText, type BundledPackage, PACKAGE } from './debian.js';
import { rulesManPage, xennetManPage } from './manpage.js';
import { daemonUnitText } from './units.js';
import { programBundleOptions, RUNTIME_PACKAGES } from './bundle-options.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const LIB = '/usr/lib/xennet';
const NODE = '/usr/bin/node';


async function must(file: string, args: string[], cwd = root): Promise<string> {
  const r = await run(file, args, { cwd, timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')}: exit ${r.code}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

function write(stage: string, path: string, text: string | Buffer, mode = 0o644): void {
  const file = join(stage, path);
  mkdirSync(dirname(file), { recursive: true, mode: 0o755 });
  writeFileSync(file, text);
  chmodSync(file, mode);
}

const gz = (text: string): Buffer => gzipSync(Buffer.from(text), { level: 9 });

function licenseOf(dir: string): Pick<BundledPackage, 'copyright' | 'licenseText'> {
  const file = readdirSync(dir).find((f) => /^(licen[cs]e|copying)(\.(md|txt))?$/i.test(f));
  if (!file) return { copyright: [] };
  const text = readFileSync(join(dir, file), 'utf8');
  return { copyright: text.split('\n').filter((l) => /^\s*copyright\b/i.test(l) && !/notice/i.test(l)).map((l) => l.trim().replace(/^copyright\s*(\(c\)|©)?\s*/i, '')), licenseText: text };
}

function packageInfo(dir: string): BundledPackage {
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name: string; version: string; license?: string };
  return { name: pkg.name, version: pkg.version, license: pkg.license ?? 'see its license file', ...licenseOf(dir) };
}

/** Copies an npm package for run time: package.json, license, its JS, and this architecture's prebuilt addon only. */
function copyRuntimePackage(from: string, to: string, arch: string): void {
  cpSync(from, to, {
    recursive: true,
    filter: (src) => {
      const rel = relative(from, src);
      if (rel === '') return true;
      const top = rel.split('/')[0]!;
      if (top === 'node_modules' || top === 'src' || top === 'browser' || top === 'binding.gyp' || /\.(md|map|d\.ts|gyp|cc|h)$/.test(rel) || /\.d\.ts$/.test(rel)) return false;
      if (top === 'prebuilds') return rel === 'prebuilds' || rel.startsWith(`prebuilds/linux-${arch}`);
      // Their command-line tools (a #! script) are not what xennet loads.
      return !(statSync(src).isFile() && readFileSync(src).subarray(0, 2).toString() === '#!');
    },
  });
}

function du(dir: string): number {
  let bytes = 0;
  const walk = (d: string): void => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      const s = lstatSync(p);
      if (s.isDirectory()) walk(p);
      else bytes += Math.ceil(s.size / 1024) * 1024;
    }
  };
  walk(dir);
  return Math.ceil(bytes / 1024);
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const f of readdirSync(d).sort()) {
      const p = join(d, f);
      const s = lstatSync(p);
      if (s.isDirectory()) walk(p);
      else if (s.isFile()) out.push(p);
    }
  };
  walk(dir);
  return out;
}

export interface BuiltDeb {
  file: string;
  version: string;
  architecture: string;
}

export async function buildDeb(outDir = join(root, 'dist', 'deb')): Promise<BuiltDeb> {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string; description: string };
  const version = `${pkg.version}-1`;
  const dpkgArch = (await must('dpkg', ['--print-architecture'])).trim();
  const nodeArch = ({ amd64: 'x64', arm64: 'arm64', armhf: 'arm', i386: 'ia32' } as Record<string, string>)[dpkgArch];
  if (!nodeArch) throw new Error(`no netlink addon for Debian architecture ${dpkgArch}`);
  const { commit, when } = await sourceStamp();
  const date = new Date(Number(when) * 1000);
  const stage = join(outDir, 'stage');
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(stage, { recursive: true });

  // The program: one esbuild run, code-split, every npm dependency inside but the run-time ones.
  const { build } = await import('esbuild');
  const lib = join(stage, LIB);
  const result = await build({
    ...programBundleOptions(pkg.version),
    absWorkingDir: root,
    outdir: lib,
    metafile: true,
  } as const);
  const cli = join(lib, 'xennet.mjs');
  writeFileSync(cli, `#!${NODE}\n${readFileSync(cli, 'utf8').replace(/^#!.*\n/, '')}`);
  chmodSync(cli, 0o755);
  mkdirSync(join(stage, 'usr/bin'), { recursive: true });
  symlinkSync(`../lib/xennet/xennet.mjs`, join(stage, 'usr/bin/xennet'));

  // The npm packages inside: bundled ones (from esbuild's inputs) and the run-time copies.
  const bundledDirs = new Set<string>();
  for (const input of Object.keys(result.metafile.inputs)) {
    const m = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (m) bundledDirs.add(join(root, m[1]!));
  }
  const runtimeDirs = RUNTIME_PACKAGES.map((p) => join(root, 'node_modules', p));
  for (const [i, dir] of runtimeDirs.entries()) copyRuntimePackage(dir, join(lib, 'node_modules', RUNTIME_PACKAGES[i]!), nodeArch);
  const bundled = [...new Set([...bundledDirs, ...runtimeDirs])].map(packageInfo);
  for (const f of filesUnder(lib)) {
    if (f === cli) continue;
    // Their license texts are in the package's copyright file (Debian policy 12.5).
    if (/\/node_modules\/.*\/(licen[cs]e|copying)(\.(md|txt))?$/i.test(f)) rmSync(f);
    else chmodSync(f, 0o644);
  }
  for (const addon of filesUnder(lib).filter((f) => f.endsWith('.node'))) await must('strip', ['--strip-unneeded', '--remove-section=.comment', '--remove-section=.note', addon]);

  // Hooks, units, modules, man pages, completion, schema, docs.
  for (const hook of HOOKS) write(stage, `/etc/xen/scripts/${hook}`, hookText(hook, { entryDir: LIB, cli: join(LIB, 'xennet.mjs'), node: NODE, writtenBy: 'installed by the xennet package' }), 0o755);
  write(stage, '/lib/systemd/system/xennet.service', daemonUnitText({ node: NODE, cli: join(LIB, 'xennet.mjs'), writtenBy: 'installed by the xennet package' }));
  write(stage, '/lib/systemd/system/xennet-bridge.service', bridgeUnitText([NODE, join(LIB, 'xennet.mjs')]));
  write(stage, '/usr/lib/modules-load.d/xennet.conf', '# xennet: bridged traffic through iptables/ip6tables (the physdev firewall) and its sysctls.\nbr_netfilter\n');
  const day = date.toISOString().slice(0, 10);
  write(stage, '/usr/share/man/man8/xennet.8.gz', gz(xennetManPage(commands, { version: pkg.version, date: day, description: pkg.description })));
  const schema = await must(NODE === process.execPath ? NODE : process.execPath, [cli, 'schema']);
  write(stage, '/usr/share/man/man5/xennet.yaml.5.gz', gz(rulesManPage(JSON.parse(schema) as object, { version: pkg.version, date: day })));
  write(stage, '/usr/share/xennet/xennet.schema.json', schema);
  const completion = await must(process.execPath, [cli, 'completion']);
  write(stage, '/usr/share/bash-completion/completions/xennet', completion);
  write(stage, '/usr/share/doc/xennet/examples/xennet.yaml', readFileSync(join(root, 'examples/xennet.yaml')));
  write(stage, '/usr/share/doc/xennet/copyright', copyrightText({ year: String(date.getUTCFullYear()), bundled }));
  write(stage, '/usr/share/doc/xennet/changelog.Debian.gz', gz(changelogText({ version, date: date.toUTCString().replace('GMT', '+0000'), commit })));
  write(stage, '/usr/share/doc/xennet/README.md', readFileSync(join(root, 'README.md')));
  for (const d of readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md'))) write(stage, `/usr/share/doc/xennet/${d}`, readFileSync(join(root, 'docs', d)));
  write(stage, '/usr/share/lintian/overrides/xennet', readFileSync(join(root, 'packaging', 'lintian-overrides')));

  // DEBIAN/: shlibs of the addon, control, conffiles, scripts, md5sums.
  const addon = filesUnder(lib).filter((f) => f.endsWith('.node'));
  const shlibs = await shlibsOf(addon, outDir);
  const debian = join(stage, 'DEBIAN');
  mkdirSync(debian, { mode: 0o755 });
  write(stage, 'DEBIAN/control', controlText({ version, architecture: dpkgArch, installedSizeKiB: du(stage), shlibs, description: 'bridge and guest firewall controller for Xen dom0 hosts' }));
  const conffiles = filesUnder(join(stage, 'etc')).map((f) => `/${relative(stage, f)}`);
  write(stage, 'DEBIAN/conffiles', conffiles.join('\n') + '\n');
  write(stage, 'DEBIAN/postinst', postinstText(), 0o755);
  write(stage, 'DEBIAN/prerm', prermText(), 0o755);
  write(stage, 'DEBIAN/postrm', postrmText(), 0o755);
  const sums = filesUnder(stage)
    .filter((f) => !f.startsWith(debian + '/') && !relative(stage, f).startsWith('etc/'))
    .map((f) => `${createHash('md5').update(readFileSync(f)).digest('hex')}  ${relative(stage, f)}`);
  write(stage, 'DEBIAN/md5sums', sums.join('\n') + '\n');
  for (const d of [stage, ...allDirs(stage)]) chmodSync(d, 0o755);

  const file = join(outDir, `${PACKAGE}_${version}_${dpkgArch}.deb`);
  rmSync(file, { force: true });
  const env = { ...process.env, SOURCE_DATE_EPOCH: when };
  const r = await run('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', stage, file], { env, timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`dpkg-deb: ${r.stderr.trim()}`);
  return { file, version, architecture: dpkgArch };
}

/**
 * What the build is of, and its date (changelog, man pages, file times): the last commit when the
 * tree is a git checkout; else $SOURCE_DATE_EPOCH (the reproducible-builds convention), else
 * package.json's modification time, so a source export without .git builds too, reproducibly.
 */
async function sourceStamp(): Promise<{ commit: string; when: string }> {
  const rev = await run('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: root }).catch(() => undefined);
  const log = rev?.code === 0 ? await run('git', ['log', '-1', '--format=%ct'], { cwd: root }).catch(() => undefined) : undefined;
  if (rev?.code === 0 && log?.code === 0) return { commit: rev.stdout.trim(), when: log.stdout.trim() };
  const epoch = process.env['SOURCE_DATE_EPOCH'];
  const when = epoch && /^\d{1,12}$/.test(epoch) ? epoch : String(Math.floor(statSync(join(root, 'package.json')).mtimeMs / 1000));
  return { commit: 'unknown (not a git checkout)', when };
}

function allDirs(dir: string): string[] {
  const out: string[] = [];
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    if (lstatSync(p).isDirectory()) out.push(p, ...allDirs(p));
  }
  return out;
}

/** dpkg-shlibdeps on the native addon: the libraries it links, as Depends entries. */
async function shlibsOf(objects: string[], outDir: string): Promise<string[]> {
  if (objects.length === 0) return [];
  const work = join(outDir, 'shlibs');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(join(work, 'debian'), { recursive: true });
  writeFileSync(join(work, 'debian', 'control'), `Source: ${PACKAGE}\n\nPackage: ${PACKAGE}\nArchitecture: any\n`);
  const out = await must('dpkg-shlibdeps', ['-O', ...objects], work);
  rmSync(work, { recursive: true, force: true });
  const m = /shlibs:Depends=(.*)/.exec(out);
  return m ? m[1]!.split(',').map((s) => s.trim()).filter((s) => s !== '') : [];
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    const deb = await buildDeb();
    process.stdout.write(`${deb.file}\n`);
    const st = statSync(deb.file);
    process.stderr.write(`built ${relative(process.cwd(), deb.file)} (${Math.round(st.size / 1024)} KiB)\n`);
  } catch (e) {
    process.stderr.write(`npm run deb: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  }
}
