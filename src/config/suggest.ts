/**
 * "Did you mean": the valid keys at a place in the rule file's schema, and the nearest of a set of
 * words to a misspelt one (pure).
 */
import type { z } from 'zod';

interface Def {
  type: string;
  shape?: Record<string, z.ZodType>;
  innerType?: z.ZodType;
  element?: z.ZodType;
  valueType?: z.ZodType;
  in?: z.ZodType;
}
const defOf = (s: z.ZodType): Def => (s as unknown as { _zod: { def: Def } })._zod.def;

/** Through optional, default, nullable and pipe wrappers to the schema that holds the value. */
function unwrap(s: z.ZodType): z.ZodType {
  for (let i = 0; i < 16; i++) {
    const d = defOf(s);
    const next = d.innerType ?? (d.type === 'pipe' ? d.in : undefined);
    if (!next) return s;
    s = next;
  }
  return s;
}

/** The keys an object at `path` may have, or undefined when `path` names no object of the schema. */
export function keysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] | undefined {
  let s = unwrap(schema);
  for (const seg of path) {
    const d = defOf(s);
    if (d.type === 'object' && d.shape && typeof seg === 'string' && seg in d.shape) s = unwrap(d.shape[seg]!);
    else if (d.type === 'array' && d.element && typeof seg === 'number') s = unwrap(d.element);
    else if (d.type === 'record' && d.valueType) s = unwrap(d.valueType);
    else return undefined;
  }
  const d = defOf(s);
  return d.type === 'object' && d.shape ? Object.keys(d.shape) : undefined;
}

/** Edit distance with transpositions (optimal string alignment). */
export function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/** The word of `words` nearest to `word`, when it is near enough to be what was meant. */
export function nearest(word: string, words: readonly string[]): string | undefined {
  if (word.length > 64) return undefined;
  const w = word.toLowerCase();
  let best: { word: string; d: number } | undefined;
  for (const c of words) {
    const d = distance(w, c.toLowerCase());
    if (d < (best?.d ?? Infinity)) best = { word: c, d };
  }
  return best && best.d > 0 && best.d <= Math.max(1, Math.floor(Math.max(word.length, best.word.length) / 3)) ? best.word : undefined;
}
