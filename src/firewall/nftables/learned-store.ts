/** Where the nftables backend keeps learned bindings: its own sets, which its rules read. */
import { run } from '../../sys/exec.js';
import type { KernelBinding, LearnedStore } from '../driver.js';
import { applyScript, listLearnedNative, nftPath, ownBridgeTablePresent } from './backend.js';
import { NFT_TABLE } from './table.js';
import { learnedScript, parseLearnedJson } from './learned.js';

/** Learned bindings as elements of `bridge xennet`'s sets learned_ip4 and learned_ip6. */
export const nftLearnedStore: LearnedStore = {
  async write(write, remove) {
    const script = learnedScript(write, remove, Date.now());
    if (script === '') return;
    try {
      await applyScript(script);
    } catch (e) {
      // No table (its last guest went, or the firewall moved to xtables): nothing in the
      // kernel to write or remove, and no rule reads a binding. Else it is a real failure.
      if (await ownBridgeTablePresent()) throw e;
    }
  },
  async list() {
    // Natively (no nft process, no JSON); through nft when that cannot be read.
    const native = await listLearnedNative().catch(() => undefined);
    if (native) return native;
    const nft = nftPath();
    if (!nft) return [];
    const out: KernelBinding[] = [];
    for (const [set, family] of [['learned_ip4', 'ipv4'], ['learned_ip6', 'ipv6']] as const) {
      const r = await run(nft, ['-j', 'list', 'set', 'bridge', NFT_TABLE, set]);
      if (r.code !== 0) continue; // no table, or an older xennet's without the set: nothing learned
      for (const e of parseLearnedJson(r.stdout, set)) out.push({ ...e, family });
    }
    return out;
  },
};
