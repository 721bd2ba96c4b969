/**
 * Run in dom0's namespace: `status` read from a network snapshot whose br_netfilter and guest-port
 * settings are made to differ from the live ones (as when a setting flips while a status is being
 * read). Prints the problems of a read from the live state and of one from that snapshot.
 */
import { NetlinkClient } from '../../../src/bridge/nl/client.js';
import { readNetSnapshot } from '../../../src/firewall/session.js';
import { hostStatus } from '../../../src/status/host-status.js';
import { guestPortStack } from '../../../src/sys/sysctl.js';

const port = process.argv[2]!;
const nl = new NetlinkClient();
const snapshot = await readNetSnapshot(nl);
nl.close();
snapshot.bridgeSysctls['net.bridge.bridge-nf-call-iptables'] = '0';
const settings = new Map(snapshot.portSysctls);
settings.set(port, guestPortStack.map((s) => (s.key === 'rp_filter' ? '0' : s.value)));
const live = await hostStatus({ env: process.env });
const fromSnapshot = await hostStatus({ env: process.env, snapshot: { ...snapshot, portSysctls: settings } });
process.stdout.write(`${JSON.stringify({ live: live.problems, snapshot: fromSnapshot.problems, bridgeNetfilter: fromSnapshot.bridgeNetfilter })}\n`);
