/**
 * Installs the hook launchers: small executables in the toolstack's script directory that load
 * this installation of xennet by absolute path (a copy of hooks-bin/ would not find dist/).
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The bundled entries (dist/bundle/), built next to dist/src/ by `npm run build`. */
const entries = { 'vif-xennet': 'vif-main.mjs', 'network-xennet': 'network-main.mjs' } as const;

export function launcherText(hook: keyof typeof entries): string {
  const target = fileURLToPath(new URL(`../../bundle/${entries[hook]}`, import.meta.url));
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

export function installHooks(dir: string, dryRun: boolean): InstalledFile[] {
  const out: InstalledFile[] = [];
  for (const hook of Object.keys(entries) as (keyof typeof entries)[]) {
    const path = join(dir, hook);
    const text = launcherText(hook);
    const changed = !existsSync(path) || readFileSync(path, 'utf8') !== text;
    if (!dryRun && changed) {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(`${path}.tmp`, text, { mode: 0o755 });
      renameSync(`${path}.tmp`, path);
    }
    out.push({ path, changed });
  }
  return out;
}
