/**
 * Installs what a Xen host needs of xennet outside npm's tree: the hooks in the toolstack's script
 * directory (vif-xennet: the bash client of the daemon, with this installation's Node entry for
 * in-process calls; network-xennet: a Node launcher), and the systemd unit of the daemon. Every
 * path in them is absolute (a copy of hooks-bin/ would not find dist/).
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DAEMON_NODE_FLAGS } from '../daemon/paths.js';
import { vifClientScript } from './vif-client.js';

/** The bundled entries (dist/bundle/), built next to dist/src/ by `npm run build`. */
const entries = { 'vif-xennet': 'vif-entry.mjs', 'network-xennet': 'network-main.mjs' } as const;

const bundled = (file: string): string => fileURLToPath(new URL(`../../bundle/${file}`, import.meta.url));
/** The CLI of this installation (what the unit runs). */
export const cliPath = (): string => fileURLToPath(new URL('../cli/main.js', import.meta.url));

/** The systemd unit of the daemon. */
export function unitText(): string {
  return `# xennet.service: installed by \`xennet install-hooks\`.
[Unit]
Description=xennet: Xen guest networking and firewall controller
Documentation=https://www.npmjs.com/package/xennet
After=network.target xenstored.service
Before=xendomains.service

[Service]
Type=simple
ExecStart=${[process.execPath, ...DAEMON_NODE_FLAGS, cliPath()].join(' ')} daemon
ExecReload=${[process.execPath, cliPath()].join(' ')} daemon --reload
Restart=on-failure
RestartSec=1
KillSignal=SIGTERM
TimeoutStopSec=45

[Install]
WantedBy=multi-user.target
`;
}

export function launcherText(hook: keyof typeof entries): string {
  const target = bundled(entries[hook]);
  if (hook === 'vif-xennet') return vifClientScript({ entry: target, node: process.execPath });
  return `#!/usr/bin/env node
// ${hook}: installed by \`xennet install-hooks\`; loads ${target}
process.exitCode = 1;
import(${JSON.stringify(target)}).then(
  async (m) => { process.exitCode = await m.main(process.argv.slice(2)); },
  (e) => { process.stderr.write(\`${hook}: cannot load xennet: \${e.message}\\n\`); process.exitCode = 1; },
);
`;
}

export interface InstalledFile {
  path: string;
  changed: boolean;
}

export interface InstallOptions {
  /** Where the toolstack looks for scripts. */
  dir: string;
  /** Where the systemd unit goes (null: no unit). */
  unitDir: string | null;
  dryRun: boolean;
}

export function installHooks(o: InstallOptions): InstalledFile[] {
  const files: [string, string, number][] = Object.keys(entries).map((hook) => [join(o.dir, hook), launcherText(hook as keyof typeof entries), 0o755]);
  if (o.unitDir !== null) files.push([join(o.unitDir, 'xennet.service'), unitText(), 0o644]);
  const out: InstalledFile[] = [];
  for (const [path, text, mode] of files) {
    const changed = !existsSync(path) || readFileSync(path, 'utf8') !== text;
    if (!o.dryRun && changed) {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(`${path}.tmp`, text, { mode });
      renameSync(`${path}.tmp`, path);
    }
    out.push({ path, changed });
  }
  return out;
}
