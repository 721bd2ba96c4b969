/**
 * `npm run test:netns:rest` (as root), the netns step of `npm test`: every netns suite, less what
 * `test:nft-only` runs again on a host without the xtables programs (test/nft-only/suites.ts),
 * so that each test runs once. `npm run test:netns` runs them all. Exits with the number of
 * failures (at most 255).
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Mocha from 'mocha';
import { NFT_ONLY_SUITES, restPattern } from '../nft-only/suites.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const files = readdirSync(here).filter((f) => f.endsWith('.test.js')).sort();
for (const s of NFT_ONLY_SUITES) if (!files.includes(s.file)) throw new Error(`test/nft-only/suites.ts names ${s.file}, which is not a netns suite`);

let failures = 0;
for (const file of files) {
  const split = NFT_ONLY_SUITES.find((s) => s.file === file);
  const mocha = new Mocha({ timeout: 60_000, ...(split ? { grep: restPattern(split) } : {}) });
  mocha.addFile(join(here, file));
  await mocha.loadFilesAsync();
  failures += await new Promise<number>((resolve) => mocha.run(resolve));
  mocha.dispose();
}
process.exit(Math.min(failures, 255));
