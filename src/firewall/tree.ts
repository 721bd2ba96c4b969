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

interface TrieNode {
  children: Map<string, TrieNode>;
  isName: boolean;
}

function buildTrie(names: Iterable<string>): TrieNode {
  const root: TrieNode = { children: new Map(), isName: false };
  for (const name of names) {
    let n = root;
    for (const ch of name) {
      let c = n.children.get(ch);
      if (!c) {
        c = { children: new Map(), isName: false };
        n.children.set(ch, c);
      }
      n = c;
    }
    n.isName = true;
  }
  return root;
}

/** A node gets a chain of its own when it branches, or is a name with names below it. */
const kept = (n: TrieNode): boolean => n.children.size >= 2 || (n.isName && n.children.size >= 1);

/** The chains of the dispatch tree for `names`, root first (the root exists even when empty). */
export function buildTree(names: Iterable<string>, spec: TreeSpec): Map<string, string[]> {
  const chains = new Map<string, string[]>();
  const leafRules = (name: string): string[] => spec.leafRules?.(name) ?? [`${spec.match(name)} ${spec.verb} ${spec.leaf(name)}`];
  const emit = (prefix: string, node: TrieNode, chain: string): void => {
    const rules: string[] = [];
    chains.set(chain, rules);
    if (node.isName && prefix !== '') rules.push(...leafRules(prefix));
    for (const ch of [...node.children.keys()].sort()) {
      let p = prefix + ch;
      let d = node.children.get(ch)!;
      while (!kept(d) && !d.isName) {
        const [only] = d.children.entries();
        if (!only) break;
        p += only[0];
        d = only[1];
      }
      if (!kept(d)) {
        rules.push(...leafRules(p));
      } else {
        rules.push(`${spec.match(`${p}+`)} ${spec.verb} ${spec.chainFor(p)}`);
        emit(p, d, spec.chainFor(p));
      }
    }
  };
  emit('', buildTrie(names), spec.root);
  return chains;
}
