// Bundles the hook entries (latency-sensitive: every guest start runs one) into dist/bundle/.
// Code splitting keeps what a hook rarely needs (the rule-file parser) in chunks loaded on demand.
import { build } from 'esbuild';

await build({
  entryPoints: { 'vif-main': 'src/hooks/vif-main.ts', 'vif-entry': 'src/hooks/vif-entry.ts', 'network-main': 'src/hooks/network-main.ts' },
  outdir: 'dist/bundle',
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node18',
  minify: true,
  sourcemap: true,
  external: ['netlink'],
  banner: { js: "import { createRequire as __xnCreateRequire } from 'node:module'; const require = __xnCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});
