/**
 * The content tag of a rule of xennet's (pure): written as the rule's comment (its userdata in
 * the kernel), it says which rule text the kernel's expressions were made from. A reader that
 * finds the tag of a rule it would write knows that rule without decoding its expressions; a
 * rule without a tag, or whose tag is not its text's, is not one xennet wrote as it is.
 */
import { createHash } from 'node:crypto';
import { normalizeRule } from '../normalize.js';

export const TAG_PREFIX = 'xn:';

const memo = new Map<string, string>();

/** `xn:` and 72 bits of the SHA-256 of the rule as nft prints it (whitespace normalized). */
export function ruleTag(rule: string): string {
  const text = normalizeRule(rule, 'nft');
  let tag = memo.get(text);
  if (tag === undefined) {
    tag = `${TAG_PREFIX}${createHash('sha256').update(text).digest('base64url').slice(0, 12)}`;
    if (memo.size > 200_000) memo.clear();
    memo.set(text, tag);
  }
  return tag;
}

/** A rule line as `nft list` prints it, split into the rule and its comment (when it ends in one). */
export function splitComment(line: string): { rule: string; comment?: string } {
  const m = /^(.*?)\s+comment "((?:[^"\\]|\\.)*)"$/.exec(line);
  return m ? { rule: m[1]!, comment: m[2]! } : { rule: line };
}

/** Marks a listed rule whose tag is missing or not its own: it differs from any rule xennet writes. */
export const UNTAGGED = ' # (not as xennet wrote it)';
