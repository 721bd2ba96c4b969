/**
 * The esbuild options both bundles share: the hooks' bundle of the source tree (scripts/bundle.mjs,
 * dist/bundle/) and the Debian package's program (build-deb.ts). ESM for Node 18, code-split so a
 * hook loads only what it needs, with `require` available to the CommonJS packages left outside.
 */
import type { BuildOptions } from 'esbuild';

export const HOOK_ENTRIES = { 'vif-main': 'src/hooks/vif-main.ts', 'vif-entry': 'src/hooks/vif-entry.ts', 'network-main': 'src/hooks/network-main.ts' } as const;

export function sharedBundleOptions(external: readonly string[]): BuildOptions {
  return {
    outExtension: { '.js': '.mjs' },
    chunkNames: 'chunks/[name]-[hash]',
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node18',
    minify: true,
    external: [...external],
    banner: { js: "import { createRequire as __xnCreateRequire } from 'node:module'; const require = __xnCreateRequire(import.meta.url);" },
    logLevel: 'warning',
  };
}
