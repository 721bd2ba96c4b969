/**
 * Entry of the suite without the xtables programs (`npm run test:nft-only`, as root):
 *
 *   unshare --mount --propagation private -- node dist/test/nft-only/enter.js [--grep PATTERN]
 *
 * Inside that private mount namespace it hides every iptables, ip6tables, ebtables, arptables,
 * xtables-* and ipset program (an overlay of /usr/sbin and /usr/bin whose upper layer holds a
 * whiteout for each: they do not exist, as on a host where only `nftables` is installed), checks
 * that they are gone and that nft is not, then checks the default backend (default-kind.test.js)
 * and runs the netns suites of the nftables backend with the same expectations. It exits with the number of failures (at most
 * 255) and refuses to start unless its mount namespace is private.
 */
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Mocha from 'mocha';
import { run } from '../../src/sys/exec.js';
import { inPrivateMountNamespace } from '../system/lib/machine.js';
import { NFT_ONLY_SUITES, nftOnlyPattern } from './suites.js';

const scratch = `/run/xnt-nft-only-${process.pid}`;
const HIDDEN = /^(ip6?tables|ebtables|arptables|xtables|ipset)/;
const netnsDir = fileURLToPath(new URL('../netns/', import.meta.url));
const here = fileURLToPath(new URL('.', import.meta.url));


function refuse(why: string): never {
  process.stderr.write(`test:nft-only: ${why}\n`);
  process.exit(2);
}

async function sh(file: string, args: string[]): Promise<void> {
  const r = await run(file, args, { timeoutMs: 60_000 });
  if (r.code !== 0) refuse(`${file} ${args.join(' ')} failed: ${(r.stderr || r.stdout).trim()}`);
}

/** Overlays `dir` with an upper layer of whiteouts (character devices 0:0) for the hidden programs. */
async function hideIn(dir: string, name: string): Promise<string[]> {
  const hidden = readdirSync(dir).filter((f) => HIDDEN.test(f));
  const upper = join(scratch, name, 'upper');
  const work = join(scratch, name, 'work');
  mkdirSync(upper, { recursive: true });
  mkdirSync(work, { recursive: true });
  for (const f of hidden) await sh('mknod', [join(upper, f), 'c', '0', '0']);
  await sh('mount', ['-t', 'overlay', 'xnt-nft-only', '-o', `lowerdir=${dir},upperdir=${upper},workdir=${work}`, dir]);
  return hidden;
}

if (process.getuid?.() !== 0) refuse('needs root');
if (!(await inPrivateMountNamespace())) refuse('not in a private mount namespace: run it through `npm run test:nft-only` (unshare --mount --propagation private)');
mkdirSync(scratch, { recursive: true });
await sh('mount', ['-t', 'tmpfs', '-o', 'mode=0700', 'xnt-nft-only', scratch]);
const hidden = [...(await hideIn('/usr/sbin', 'sbin')), ...(await hideIn('/usr/bin', 'bin'))];
for (const p of ['iptables', 'ip6tables', 'ebtables', 'ipset', 'iptables-nft-save', 'ebtables-nft-restore']) {
  for (const d of ['/usr/sbin', '/usr/bin', '/sbin', '/bin']) if (existsSync(join(d, p))) refuse(`${d}/${p} is still there`);
}
if (!existsSync('/usr/sbin/nft')) refuse('nft is missing: the nftables backend needs it');
process.stderr.write(`test:nft-only: hidden ${hidden.length} programs (${hidden.filter((h) => !h.includes('-')).join(', ')}, ...)\n`);

let failures = 0;
for (const s of [{ file: join(here, 'default-kind.test.js') }, ...NFT_ONLY_SUITES.map((x) => ({ file: join(netnsDir, x.file), grep: nftOnlyPattern(x) }))]) {
  const mocha = new Mocha({ timeout: 60_000, ...('grep' in s ? { grep: s.grep } : {}) });
  mocha.addFile(s.file);
  await mocha.loadFilesAsync();
  failures += await new Promise<number>((resolve) => mocha.run(resolve));
  mocha.dispose();
}
process.exit(Math.min(failures, 255));
