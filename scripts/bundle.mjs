// Bundles the hook entries (latency-sensitive: every guest start runs one) into dist/bundle/.
// Code splitting keeps what a hook rarely needs (the rule-file parser) in chunks loaded on demand.
// Runs after tsc: the options it shares with the Debian package's bundle come from dist/.
import { build } from 'esbuild';
import { HOOK_ENTRIES, sharedBundleOptions } from '../dist/src/package/bundle-options.js';

await build({
  ...sharedBundleOptions(['netlink']),
  entryPoints: HOOK_ENTRIES,
  outdir: 'dist/bundle',
  sourcemap: true,
});
