/**
 * A text table that fits a terminal's width (pure). Column widths follow the content; when the
 * table is wider than the terminal it gives way, in this order, until it fits:
 *
 *   1. `stack` columns put each item on a line of its own (a guest's addresses);
 *   2. `secondary` columns leave the table, lowest rank first, for a line of their own under
 *      each row (`mac 00:16:3e:00:00:05  mtu 1500 ...`, wrapped at item boundaries); those
 *      that fit again once wider ones left come back;
 *   3. `elide` columns are cut, widest first, down to their minimum, ending in `~`;
 *   4. whatever is still too long (a very narrow terminal) is wrapped by characters.
 *
 * No line is ever wider than the width. Colour is applied after the layout, so escape codes
 * never count as width.
 */

export interface TableColumn {
  header: string;
  give?: 'stack' | 'elide';
  /** For `elide`: the narrowest the column gets (default 6). */
  min?: number;
  /**
   * Leaves the table for a line under each row when the table does not fit otherwise: rank 1
   * first, then 2, ...; those that fit again once others left come back.
   */
  secondary?: number;
}

export interface TableCell {
  /** Items, shown separated by a space, or one per line when the column stacks. */
  items: string[];
  /** Colours the cell's text (after padding and eliding). */
  paint?: (text: string) => string;
}

export const ELLIPSIS = '~';
/** A colour's escape sequence (SGR). */
// eslint-disable-next-line no-control-regex
export const ESCAPE = /\x1b\[[0-9;]*m/g;
const GAP = '  ';

function elide(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, Math.max(0, width - 1))}${ELLIPSIS}`;
}

/** Splits a line longer than `width` into lines of at most `width` (continuations indented by 2). */
export function hardWrap(line: string, width: number): string[] {
  if (line.length <= width) return [line];
  const out = [line.slice(0, width)];
  for (let rest = line.slice(width); rest.length > 0; rest = rest.slice(width - 2)) out.push(`  ${rest.slice(0, width - 2)}`);
  return out;
}

/** Items joined by two spaces into lines of at most `width`, each starting with `indent`. */
function flow(items: string[], width: number, indent: string): string[] {
  const lines: string[] = [];
  let cur = '';
  for (const item of items) {
    const next = cur === '' ? `${indent}${item}` : `${cur}${GAP}${item}`;
    if (cur !== '' && next.length > width) {
      lines.push(cur);
      cur = `${indent}${item}`;
    } else {
      cur = next;
    }
  }
  if (cur !== '') lines.push(cur);
  return lines.flatMap((l) => hardWrap(l, width));
}

interface Layout {
  widths: number[];
  stacked: boolean[];
  /** Columns shown in the table (the others go under the row). */
  shown: boolean[];
}

const natural = (c: TableColumn, cells: TableCell[], stacked: boolean): number =>
  Math.max(c.header.length, ...cells.map((cell) => (stacked ? Math.max(0, ...cell.items.map((i) => i.length)) : cell.items.join(' ').length)));

function total(l: Layout): number {
  const ws = l.widths.filter((_, i) => l.shown[i]);
  return ws.reduce((a, b) => a + b, 0) + GAP.length * Math.max(0, ws.length - 1);
}

function layout(columns: TableColumn[], rows: TableCell[][], width: number): Layout {
  const col = (i: number): TableCell[] => rows.map((r) => r[i] ?? { items: [] });
  // Each column's natural widths, measured once (a layout is tried several times: 1000 rows).
  const flat = columns.map((c, i) => natural(c, col(i), false));
  const stacked = columns.map((c, i) => (c.give === 'stack' ? natural(c, col(i), true) : flat[i]!));
  /** The layout of the columns `shown`: stacked where needed; elided too when `elideToo`. */
  const with_ = (shown: boolean[], elideToo: boolean): Layout => {
    const l: Layout = { widths: [...flat], stacked: columns.map(() => false), shown };
    columns.forEach((c, i) => {
      if (total(l) > width && c.give === 'stack' && shown[i]) {
        l.stacked[i] = true;
        l.widths[i] = stacked[i]!;
      }
    });
    while (elideToo && total(l) > width) {
      let widest = -1;
      columns.forEach((c, i) => {
        if (c.give === 'elide' && shown[i] && l.widths[i]! > Math.max(c.min ?? 6, c.header.length) && (widest < 0 || l.widths[i]! > l.widths[widest]!)) widest = i;
      });
      if (widest < 0) break;
      l.widths[widest]!--;
    }
    return l;
  };
  const fits = (shown: boolean[]): boolean => total(with_(shown, false)) <= width;
  const shown = columns.map(() => true);
  // Secondary columns leave, lowest rank first, until the rest fits without eliding anything;
  // then those that fit again come back, the most important first.
  const leaving = columns
    .map((c, i) => ({ rank: c.secondary, i }))
    .filter((x): x is { rank: number; i: number } => x.rank !== undefined)
    .sort((a, b) => a.rank - b.rank || a.i - b.i)
    .map((x) => x.i);
  const left: number[] = [];
  for (const i of leaving) {
    if (fits(shown)) break;
    shown[i] = false;
    left.push(i);
  }
  for (const i of [...left].reverse()) {
    shown[i] = true;
    if (!fits(shown)) shown[i] = false;
  }
  return with_(shown, true);
}

/** The table's lines (header first), none wider than `width`. */
export function renderTable(columns: TableColumn[], rows: TableCell[][], width: number): string[] {
  const l = layout(columns, rows, width);
  const shown = columns.map((_, i) => i).filter((i) => l.shown[i]);
  const last = shown[shown.length - 1];
  const line = (texts: Map<number, { text: string; paint?: (t: string) => string }>): string => {
    const parts = shown.map((i) => {
      const t = texts.get(i) ?? { text: '' };
      const cut = elide(t.text, l.widths[i]!);
      const padded = i === last ? cut : cut.padEnd(l.widths[i]!);
      return t.paint && cut !== '' ? t.paint(padded) : padded;
    });
    return parts.join(GAP).trimEnd();
  };
  const plain = (s: string): string => s.replace(ESCAPE, '');
  const out: string[] = [line(new Map(shown.map((i) => [i, { text: columns[i]!.header }])))];
  for (const row of rows) {
    const height = Math.max(1, ...shown.map((i) => (l.stacked[i] ? (row[i]?.items.length ?? 0) : 1)));
    for (let k = 0; k < height; k++) {
      const texts = new Map<number, { text: string; paint?: (t: string) => string }>();
      for (const i of shown) {
        const cell = row[i] ?? { items: [] };
        const text = l.stacked[i] ? (cell.items[k] ?? '') : k === 0 ? cell.items.join(' ') : '';
        texts.set(i, { text, ...(cell.paint ? { paint: cell.paint } : {}) });
      }
      out.push(line(texts));
    }
    const rest = columns
      .map((c, i) => ({ c, i }))
      .filter(({ i }) => !l.shown[i] && (row[i]?.items.length ?? 0) > 0)
      .map(({ c, i }) => `${c.header.toLowerCase()} ${row[i]!.items.join(' ')}`);
    if (rest.length > 0) out.push(...flow(rest, width, '  '));
  }
  // A terminal narrower than the narrowest layout: wrapped by characters, without colour.
  return out.flatMap((s) => (plain(s).length > width ? hardWrap(plain(s), width) : [s]));
}
