/**
 * Installs what a Xen host needs of xennet outside npm's tree: the hooks in the toolstack's script
 * directory (vif-xennet: the bash client of the daemon, with this installation's Node entry for
 * in-process calls; network-xennet: a Node launcher), and the systemd unit of the daemon. Every
 * path in them is absolute (a copy of hooks-bin/ would not find dist/).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clearAutostartOff } from '../daemon/autostart.js';
import { daemonUnitText } from '../package/units.js';
import { readJsonTolerant, removeFile, stateDir, writeJsonAtomic } from '../sys/statefile.js';
import { vifClientScript } from './vif-client.js';

/** The bundled entries (dist/bundle/), built next to dist/src/ by `npm run build`. */
const entries = { 'vif-xennet': 'vif-entry.mjs', 'network-xennet': 'network-main.mjs' } as const;

const bundled = (file: string): string => fileURLToPath(new URL(`../../bundle/${file}`, import.meta.url));
/** The CLI of this installation (what the unit runs). */
export const cliPath = (): string => fileURLToPath(new URL('../cli/main.js', import.meta.url));

/** The systemd unit of the daemon, running this installation. */
export function unitText(): string {
  return daemonUnitText({ node: process.execPath, cli: cliPath(), writtenBy: 'installed by `xennet install-hooks`' });
}

/** A hook's text, loading `entryDir`'s bundled entry with `node` (vif-xennet starts the daemon with `cli`). */
export function hookText(hook: keyof typeof entries, o: { entryDir: string; cli: string; node: string; writtenBy: string }): string {
  const target = join(o.entryDir, entries[hook]);
  if (hook === 'vif-xennet') return vifClientScript({ entry: target, cli: o.cli, node: o.node });
  return `#!${o.node}
// ${hook}: ${o.writtenBy}; loads ${target}
process.exitCode = 1;
import(${JSON.stringify(target)}).then(
  async (m) => { process.exitCode = await m.main(process.argv.slice(2)); },
  (e) => { process.stderr.write(\`${hook}: cannot load xennet: \${e.message}\\n\`); process.exitCode = 1; },
);
`;
}

export const HOOKS = Object.keys(entries) as (keyof typeof entries)[];

export function launcherText(hook: keyof typeof entries): string {
  return hookText(hook, { entryDir: dirname(bundled(entries[hook])), cli: cliPath(), node: process.execPath, writtenBy: 'installed by `xennet install-hooks`' });
}

export interface InstalledFile {
  path: string;
  changed: boolean;
  /** What the file was: none there yet, another content, or already this one. */
  state: 'new' | 'changed' | 'unchanged';
}

export interface InstallOptions {
  /** Where the toolstack looks for scripts. */
  dir: string;
  /** Where the systemd unit goes (null: no unit). */
  unitDir: string | null;
  dryRun: boolean;
  /** Where the manifest goes (the state directory; default process.env). */
  env?: NodeJS.ProcessEnv;
}

/**
 * What `install-hooks` wrote, for `xennet uninstall`: path -> sha256 of the content written. A
 * file is listed only when install-hooks wrote it (or listed it before): one that was already
 * there with the same content (a Debian package's) is not xennet's to remove.
 */
export interface Manifest {
  version: 1;
  files: Record<string, { sha256: string }>;
}

export const manifestPath = (env: NodeJS.ProcessEnv = process.env): string => join(stateDir(env), 'installed-files.json');
export const sha256 = (text: string | Buffer): string => createHash('sha256').update(text).digest('hex');

/** A path install-hooks may have written: absolute, normalised, named like one of its files. */
function isInstallable(path: string): boolean {
  return path.startsWith('/') && resolve(path) === path && [...HOOKS, 'xennet.service'].includes(basename(path));
}

export function readManifest(env: NodeJS.ProcessEnv = process.env): Manifest | undefined {
  const r = readJsonTolerant(manifestPath(env));
  if (r.kind !== 'ok' || typeof r.value !== 'object' || r.value === null) return undefined;
  const files = (r.value as { files?: unknown }).files;
  if (typeof files !== 'object' || files === null) return undefined;
  const out: Manifest = { version: 1, files: {} };
  for (const [path, e] of Object.entries(files)) {
    const h = (e as { sha256?: unknown } | null)?.sha256;
    // Read as hostile (uninstall deletes what it lists, as root): only the names install-hooks
    // writes, at a plain absolute path.
    if (typeof h === 'string' && /^[0-9a-f]{64}$/.test(h) && isInstallable(path)) out.files[path] = { sha256: h };
  }
  return out;
}

export function removeManifest(env: NodeJS.ProcessEnv = process.env): void {
  removeFile(manifestPath(env));
}

export function installHooks(o: InstallOptions): InstalledFile[] {
  const env = o.env ?? process.env;
  const manifest = readManifest(env) ?? { version: 1 as const, files: {} };
  let listed = false;
  const files: [string, string, number][] = Object.keys(entries).map((hook) => [join(o.dir, hook), launcherText(hook as keyof typeof entries), 0o755]);
  if (o.unitDir !== null) files.push([join(o.unitDir, 'xennet.service'), unitText(), 0o644]);
  const out: InstalledFile[] = [];
  for (const [path, text, mode] of files) {
    const existed = existsSync(path);
    const changed = !existed || readFileSync(path, 'utf8') !== text;
    const key = resolve(path);
    if (!o.dryRun && changed) {
      mkdirSync(dirname(path), { recursive: true });
      // Listed before it is written: a crash in between leaves a listed file whose content does
      // not match (uninstall then leaves it, saying so), never an unlisted file of xennet's.
      manifest.files[key] = { sha256: sha256(text) };
      writeJsonAtomic(manifestPath(env), manifest);
      listed = true;
      writeFileSync(`${path}.tmp`, text, { mode });
      renameSync(`${path}.tmp`, path);
    } else if (!o.dryRun && manifest.files[key] && manifest.files[key].sha256 !== sha256(text)) {
      manifest.files[key] = { sha256: sha256(text) };
      listed = true;
    }
    out.push({ path, changed, state: !existed ? 'new' : changed ? 'changed' : 'unchanged' });
  }
  if (listed) writeJsonAtomic(manifestPath(env), manifest);
  // Installed again after an uninstall: hooks may start the daemon again.
  if (!o.dryRun) clearAutostartOff(env);
  return out;
}
