/**
 * The esbuild options both bundles share: the hooks' bundle of the source tree (scripts/bundle.mjs,
 * dist/bundle/) and the Debian package's program (build-deb.ts). ESM for Node 18, code-split so a
 * hook loads only what it needs, with `require` available to the CommonJS packages left outside.
 */
import type { BuildOptions } from 'esbuild';

export const HOOK_ENTRIES = { 'vif-main': 'src/hooks/vif-main.ts', 'vif-entry': 'src/hooks/vif-entry.ts', 'network-main': 'src/hooks/network-main.ts' } as const;

/** npm packages the bundle loads by name at run time (native addon, or a require() esbuild cannot see). */
export const RUNTIME_PACKAGES = ['netlink', 'node-gyp-build', 'yaml'] as const;

/**
 * The Debian package's program: the CLI (`xennet.mjs`) and the hooks, code-split, every npm
 * dependency inside but RUNTIME_PACKAGES. The bench builds the same to time what users run.
 */
export function programBundleOptions(version: string): BuildOptions {
  return {
    ...sharedBundleOptions(RUNTIME_PACKAGES),
    entryPoints: { xennet: 'src/cli/main.ts', ...HOOK_ENTRIES },
    legalComments: 'none',
    define: { XENNET_BUNDLED_VERSION: JSON.stringify(version), XENNET_PACKAGED: 'true' },
  };
}

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
