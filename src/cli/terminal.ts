/** What the operator's terminal can show: its width, and whether to colour. */

/** The width the operator's terminal has: `COLUMNS`, the tty's own, 80 when unknown. */
export function terminalWidth(env: NodeJS.ProcessEnv, ttyColumns: number | undefined): number {
  const fromEnv = Number(env['COLUMNS']);
  if (Number.isInteger(fromEnv) && fromEnv >= 20 && fromEnv <= 1000) return fromEnv;
  if (ttyColumns !== undefined && Number.isInteger(ttyColumns) && ttyColumns >= 20) return ttyColumns;
  return 80;
}

/** Colour only on a terminal, never with NO_COLOR (any value but empty) or TERM=dumb. */
export function colorWanted(env: NodeJS.ProcessEnv, isTty: boolean): boolean {
  return isTty && !env['NO_COLOR'] && env['TERM'] !== 'dumb';
}
