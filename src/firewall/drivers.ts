/** The driver of each backend: the only module of the core that knows there are two. */
import type { IptablesVariant } from './backend.js';
import type { FirewallDriver, TableCodec } from './driver.js';
import type { LiveTable } from './live.js';
import type { BackendKind, Engine, TableName } from './model.js';
import { nftablesDriver } from './nftables/driver.js';
import { xtablesDriver } from './xtables/driver.js';

const DRIVERS: Record<BackendKind, FirewallDriver> = { xtables: xtablesDriver, nftables: nftablesDriver };

export const driverFor = (engine: Engine | BackendKind): FirewallDriver => DRIVERS[typeof engine === 'string' ? engine : engine.kind];

/** Every driver (for what each leaves behind: learned sets, tables of the backend not in use). */
export const allDrivers = (): readonly FirewallDriver[] => Object.values(DRIVERS);

/** The tables an engine writes (the others must hold nothing of xennet's). */
export const engineTables = (e: Engine): readonly TableName[] => driverFor(e).tables;
/** What an engine is, as status and plan name it. */
export const engineName = (e: Engine): string => driverFor(e).describe(e);

/** The codec of a table, whichever driver owns it (every table is read and planned, the other backend's too: switching is a diff). */
export function codecOf(table: TableName): TableCodec {
  for (const d of Object.values(DRIVERS)) {
    const c = d.codecs[table];
    if (c) return c;
  }
  throw new Error(`no driver owns table ${table}`);
}

/**
 * Test seam: `driver` stands in for the driver of its kind until the returned function is called
 * (the unit tests run the core on a fake driver, which proves the core asks and never assumes).
 */
export function substituteDriver(driver: FirewallDriver): () => void {
  const before = DRIVERS[driver.kind];
  DRIVERS[driver.kind] = driver;
  return () => {
    DRIVERS[driver.kind] = before;
  };
}

/** A table's live state from what its backend's reader printed. */
export const parseLive = (text: string, table: TableName): LiveTable => codecOf(table).parse(text);

/** The backend in use, as `status` and `plan` report it. */
export interface BackendInfo {
  firewall: string;
  kind: BackendKind;
  iptables: string;
  ebtables: string;
  /** What it runs on, in one line. */
  summary: string;
}

export function backendInfo(engine: Engine, variant: IptablesVariant): BackendInfo {
  const d = driverFor(engine);
  return { firewall: d.describe(engine), kind: d.kind, iptables: `iptables-${variant}`, ebtables: 'ebtables-nft', summary: d.summary(engine, variant) };
}
