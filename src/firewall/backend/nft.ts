/**
 * A thin driver around the system's `nft`: reads xennet's own tables (`bridge xennet`,
 * `inet xennet`), applies a script as one transaction (`nft -f -`: all of it or nothing), probes
 * the kernel, and lists the base chains of everyone else's tables (read only). nft >= 1.0.1 reads
 * only the tables a command names, so none of this grows with other tables' size.
 */
import { XennetError } from '../../sys/errors.js';
import { findProgram, needProgram, run } from '../../sys/exec.js';
import type { BridgeConntrack } from '../model.js';
import { NFT_TABLE } from '../nft/compile.js';
import { NFT_FAMILIES } from '../nft/script.js';

export const nftPath = (): string | undefined => findProgram('nft');

const needNft = (): string => needProgram('nft', 'nftables', 'the nftables backend drives it');

const noSuchTable = (stderr: string): boolean => /No such file or directory/.test(stderr);

/** The listing of xennet's nftables tables ('' when nft is absent: then nothing of ours can be read or exist through it). */
export async function listOwnTables(onSpawn?: (pid: number) => void): Promise<string> {
  const nft = nftPath();
  if (!nft) return '';
  const parts = await Promise.all(
    NFT_FAMILIES.map(async (f) => {
      const r = await run(nft, ['list', 'table', f, NFT_TABLE], onSpawn ? { onSpawn } : {});
      if (r.code === 0) return r.stdout;
      if (noSuchTable(r.stderr)) return '';
      throw new XennetError('exec', `nft list table ${f} ${NFT_TABLE} failed: ${r.stderr.trim() || `exit ${r.code}`}`);
    }),
  );
  return parts.join('');
}

/** Applies a script in one transaction; a rejected one changes nothing. */
export async function applyScript(script: string, onSpawn?: (pid: number) => void): Promise<void> {
  const r = await run(needNft(), ['-f', '-'], { input: script, ...(onSpawn ? { onSpawn } : {}) });
  if (r.code !== 0) {
    throw new XennetError('exec', `nft rejected the update: ${r.stderr.trim().split('\n').slice(0, 3).join(' ')}; the previous rules stay in force`, {
      hint: 'run `xennet plan` to see the difference; report the script (`xennet plan --json`) if it persists',
    });
  }
}

/**
 * Whether the bridge family can read connection state itself (nf_conntrack_bridge, Linux >= 5.3):
 * `nft -c` checks a table using `ct state` in the kernel without committing it.
 */
export async function probeBridgeConntrack(): Promise<BridgeConntrack> {
  const r = await run(needNft(), ['-c', '-f', '-'], { input: 'table bridge xennet-probe { chain c { ct state established accept; }; }\n' });
  return r.code === 0 ? 'bridge' : 'mark';
}

export interface ForeignBaseChain {
  family: string;
  table: string;
  name: string;
  hook: string;
  prio: number;
  policy: string;
}

/** Every base chain of every table that is not xennet's (read only: status looks for conflicts). */
export async function listForeignBaseChains(): Promise<ForeignBaseChain[]> {
  const nft = nftPath();
  if (!nft) return [];
  const r = await run(nft, ['-j', 'list', 'chains']);
  if (r.code !== 0) throw new XennetError('exec', `nft -j list chains failed: ${r.stderr.trim() || `exit ${r.code}`}`);
  const parsed: unknown = JSON.parse(r.stdout);
  const items = (parsed as { nftables?: unknown[] }).nftables ?? [];
  const out: ForeignBaseChain[] = [];
  for (const item of items) {
    const c = (item as { chain?: Record<string, unknown> }).chain;
    if (!c || typeof c['hook'] !== 'string') continue;
    if (c['table'] === NFT_TABLE && (c['family'] === 'bridge' || c['family'] === 'inet')) continue;
    out.push({ family: String(c['family']), table: String(c['table']), name: String(c['name']), hook: c['hook'], prio: Number(c['prio']), policy: String(c['policy'] ?? 'accept') });
  }
  return out;
}

/** The rules of one foreign chain (read only), as nft prints them. */
export async function listChainRules(family: string, table: string, chain: string): Promise<string[]> {
  const r = await run(needNft(), ['list', 'chain', family, table, chain]);
  if (r.code !== 0) return [];
  return r.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('table ') && !l.startsWith('chain ') && l !== '}' && !l.startsWith('type '));
}

/**
 * Whether `bridge xennet` exists. Listing one of its sets is cheap; nft 1.0.6 fetches every
 * chain's rules for `list tables` or `list chain` (1.3 s with 1000 guests here, against 34 ms).
 */
export async function ownBridgeTablePresent(): Promise<boolean> {
  const nft = nftPath();
  if (!nft) return false;
  const r = await run(nft, ['list', 'set', 'bridge', NFT_TABLE, 'guests']);
  return r.code === 0;
}
