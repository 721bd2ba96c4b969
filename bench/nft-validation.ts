/**
 * `sudo node dist/bench/nft-validation.js`: what nf_tables' validation of a table costs a commit
 * that adds one guest's jump, with the guests' rules laid out two ways (the nf_tables issue: why
 * an online is not flat in the number of guests, and what a layout of shared chains would give).
 *
 * A commit that adds a rule with a verdict, or a verdict map element that jumps, makes the kernel
 * validate the whole table: a walk from each base chain through every chain it can reach
 * (`nft_table_validate`). With a chain per guest (xennet's layout today: a verdict map on the
 * port dispatches to the guest's own chains) that walk visits every guest's rules; with chains
 * shared by the guests of one policy (their MACs and addresses as set elements), it visits each
 * shared chain once, however many elements jump there (kernels with the validation memo; 6.18
 * here).
 *
 * For each size, a table of that many guests in a namespace of its own (made with `nft -f`), then
 * the kernel's time for one `add element` of a jump: the `sendmsg` that carries the batch, which
 * the kernel processes in the sender's context, as `strace -T` times it (median of XNT_VALIDATION_RUNS,
 * default 9). XNT_VALIDATION_SIZES (default 0,200,1000), XNT_VALIDATION_RULES rules per guest
 * chain (default 31, about a guest's rules in xennet's table). Needs nft and strace.
 */
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addNetns, deleteNetns, type SimNetns } from '../src/sim/netns.js';

const sizes = (process.env['XNT_VALIDATION_SIZES'] ?? '0,200,1000').split(',').map(Number);
const rulesPerChain = Number(process.env['XNT_VALIDATION_RULES'] ?? 31);
const runs = Number(process.env['XNT_VALIDATION_RUNS'] ?? 9);

type Layout = 'per-guest' | 'shared';

/** A guest's chain: rules that compare and end in a verdict, as a guest's checks do. */
function chainBody(): string {
  const rules: string[] = [];
  for (let i = 0; i < rulesPerChain - 1; i++) rules.push(`    ether saddr 00:16:3e:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')} ip saddr 10.0.${i >> 8}.${i & 255} udp dport ${1000 + i} counter accept`);
  rules.push('    counter drop');
  return rules.join('\n');
}

function table(layout: Layout, guests: number): string {
  const out = ['table bridge xnt_validation {', '  map from_guest { type ifname : verdict; }'];
  if (layout === 'shared') out.push(`  chain shared_policy {\n${chainBody()}\n  }`);
  else for (let g = 0; g < guests; g++) out.push(`  chain guest${g} {\n${chainBody()}\n  }`);
  out.push('  chain forward_hook {\n    type filter hook forward priority 0; policy accept;\n    iifname vmap @from_guest\n  }', '}');
  if (guests > 0) out.push(`add element bridge xnt_validation from_guest { ${Array.from({ length: guests }, (_, g) => `"vif${g}" : jump ${layout === 'shared' ? 'shared_policy' : `guest${g}`}`).join(', ')} }`);
  return out.join('\n') + '\n';
}

/** The kernel's time (ms) for one batch adding a jump to `target`: the longest sendmsg of `nft`. */
async function addJump(ns: SimNetns, name: string, target: string): Promise<number> {
  const r = await ns.exec('strace', ['-T', '-e', 'trace=sendmsg', 'nft', 'add', 'element', 'bridge', 'xnt_validation', 'from_guest', `{ "${name}" : jump ${target} }`]);
  if (r.code !== 0) throw new Error(`nft add element: ${r.stderr.slice(0, 300)}`);
  const times = [...r.stderr.matchAll(/<(\d+\.\d+)>/g)].map((m) => Number(m[1]) * 1000);
  return Math.max(...times);
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const dir = mkdtempSync(join(tmpdir(), 'xnt-validation-'));
const ns = await addNetns(`xnt-${process.pid}-validation`);
try {
  process.stdout.write(`kernel time of one commit adding a guest's jump (ms, median of ${runs}; ${rulesPerChain} rules per guest chain)\n`);
  process.stdout.write('guests  chain per guest  chains shared\n');
  for (const n of sizes) {
    const row: string[] = [];
    for (const layout of ['per-guest', 'shared'] as const) {
      const file = join(dir, `${layout}-${n}.nft`);
      writeFileSync(file, table(layout, n));
      await ns.exec('nft', ['flush', 'ruleset']);
      const load = await ns.exec('nft', ['-f', file], { timeoutMs: 300_000 });
      if (load.code !== 0) throw new Error(`nft -f: ${load.stderr.slice(0, 300)}`);
      // The added element jumps to a chain of the kind the layout has (a guest's own, or the shared one).
      if (layout === 'per-guest') await ns.exec('nft', ['add', 'chain', 'bridge', 'xnt_validation', 'extra']);
      const times: number[] = [];
      for (let i = 0; i < runs; i++) times.push(await addJump(ns, `new${i}`, layout === 'shared' ? 'shared_policy' : 'extra'));
      row.push(median(times).toFixed(2));
    }
    process.stdout.write(`${String(n).padEnd(8)}${row[0]!.padEnd(17)}${row[1]}\n`);
  }
} finally {
  await deleteNetns(ns.name);
  rmSync(dir, { recursive: true, force: true });
}
