/**
 * Run in dom0: `plan` as the daemon makes it, of the network in a snapshot, with the given port's
 * IP-stack settings open in the snapshot only (the kernel's stay as they are). Prints the plan's
 * warnings as JSON.
 */
import { NetlinkClient } from '../../../src/bridge/nl/client.js';
import { loadPolicy, rulesSource } from '../../../src/config/load.js';
import { hostPlan } from '../../../src/firewall/cli-plan.js';
import { readNetSnapshot } from '../../../src/firewall/session.js';
import { guestPortStack } from '../../../src/sys/sysctl.js';

const port = process.argv[2]!;
const nl = new NetlinkClient();
const snapshot = await readNetSnapshot(nl);
nl.close();
const portSysctls = new Map(snapshot.portSysctls);
portSysctls.set(port, guestPortStack.map(() => '0'));
const source = rulesSource(undefined);
const result = await hostPlan(loadPolicy(source.file, { absentOk: source.absentOk }), { apply: false, snapshot: { ...snapshot, portSysctls } });
process.stdout.write(`${JSON.stringify(result.warnings)}\n`);
