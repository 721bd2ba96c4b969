/** The driver of each backend: the only module of the core that knows there are two. */
import type { FirewallDriver, TableCodec } from './driver.js';
import type { LiveTable } from './live.js';
import type { BackendKind, Engine, TableName } from './model.js';
import { nftablesDriver } from './nftables/driver.js';
import { xtablesDriver } from './xtables/driver.js';

const DRIVERS: Readonly<Record<BackendKind, FirewallDriver>> = { xtables: xtablesDriver, nftables: nftablesDriver };

export const driverFor = (engine: Engine | BackendKind): FirewallDriver => DRIVERS[typeof engine === 'string' ? engine : engine.kind];

export const allDrivers: readonly FirewallDriver[] = Object.values(DRIVERS);

/** The tables an engine writes (the others must hold nothing of xennet's). */
export const engineTables = (e: Engine): readonly TableName[] => driverFor(e).tables;
/** What an engine is, as status and plan name it. */
export const engineName = (e: Engine): string => driverFor(e).describe(e);

const CODECS = new Map<TableName, TableCodec>(Object.values(DRIVERS).flatMap((d) => Object.entries(d.codecs) as [TableName, TableCodec][]));

/** The codec of a table, whichever driver owns it (every table is read and planned, the other backend's too: switching is a diff). */
export function codecOf(table: TableName): TableCodec {
  const c = CODECS.get(table);
  if (!c) throw new Error(`no driver owns table ${table}`);
  return c;
}

/** A table's live state from what its backend's reader printed. */
export const parseLive = (text: string, table: TableName): LiveTable => codecOf(table).parse(text);
