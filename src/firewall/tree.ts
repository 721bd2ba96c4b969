/**
 * The dispatch tree: instead of one rule per vif in a flat list (every packet visits O(guests)
 * rules), a path-compressed trie over vif names where each chain branches on the next character
 * with an interface wildcard (`vif1+`). A packet visits one chain per branching point, each with
 * at most one rule per possible next character. Leaves match exact names, so `vif1.1` never
 * catches `vif1.10`. The same trie over the hex digits of MACs and addresses (a prefix match per
 * branch) dispatches the identity guard.
 */

export interface TreeSpec {
  /** The root chain (the jump target from the built-in chain). */
  root: string;
  /** Chain for the subtree of names starting with `prefix`. */
  chainFor(prefix: string): string;
  /** Match for an interface name or wildcard pattern (ends with `+`). */
  match(pattern: string): string;
  /** Jump target for an exact vif name. */
  leaf(name: string): string;
  /** The rules for an exact name, instead of one jump to `leaf(name)`. */
  leafRules?(name: string): string[];
  /**
   * `-g` (goto): when the leaf returns, control goes back to the chain that jumped to the root,
   * so the remaining siblings on the path are never evaluated (iptables). ebtables has no goto
   * and uses `-j`.
   */
  verb: '-g' | '-j';
}

/** The chains of the dispatch tree for `names`, root first (the root exists even when empty). */
export function buildTree(names: Iterable<string>, spec: TreeSpec): Map<string, string[]> {
  const chains = new Map<string, string[]>();
  const leafRules = (name: string): string[] => spec.leafRules?.(name) ?? [`${spec.match(name)} ${spec.verb} ${spec.leaf(name)}`];
  // A path-compressed trie walked over the sorted names themselves (no node per character: a
  // host's 1000 guests have as many MACs and addresses of 12 and 32 digits).
  const emit = (prefix: string, keys: readonly string[], chain: string): void => {
    const rules: string[] = [];
    chains.set(chain, rules);
    const at = prefix.length;
    let i = 0;
    // A name that is this node's prefix itself, with names below it.
    if (prefix !== '' && keys[0] === prefix) {
      rules.push(...leafRules(prefix));
      i = 1;
    }
    while (i < keys.length) {
      const ch = keys[i]![at]!;
      let j = i + 1;
      while (j < keys.length && keys[j]![at] === ch) j++;
      const group = keys.slice(i, j);
      i = j;
      if (group.length === 1) {
        rules.push(...leafRules(group[0]!));
        continue;
      }
      // Down the single path until the names branch, or one of them ends there.
      let p = prefix + ch;
      for (;;) {
        const first = group[0]!;
        if (first.length === p.length) break;
        const next = first[p.length]!;
        if (!group.every((k) => k[p.length] === next)) break;
        p += next;
      }
      rules.push(`${spec.match(`${p}+`)} ${spec.verb} ${spec.chainFor(p)}`);
      emit(p, group, spec.chainFor(p));
    }
  };
  emit('', [...new Set(names)].sort(), spec.root);
  return chains;
}
