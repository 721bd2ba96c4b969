/**
 * `xennet bridge status`: a pure description of a bridge takeover's layout, for people (a table)
 * and machines (--json).
 */
import type { TakeoverJournal } from './journal.js';
import { addressesOn, describeAddress, describeRoute, isCarriedRoute, isConfiguredAddress, linkByName, portsOf, routesVia, type HostState } from './model.js';
import { classifyLayout, type TakeoverSpec } from './takeover-plan.js';

export type TakeoverState = 'taken-over' | 'original' | 'half-done' | 'inconsistent' | 'unmanaged';

export interface LinkSummary {
  name: string;
  kind: string | null;
  mac: string;
  mtu: number;
  up: boolean;
  master: string | null;
}

export interface BridgeStatus {
  spec: TakeoverSpec;
  state: TakeoverState;
  /** One sentence that says what `state` means for the operator. */
  summary: string;
  journal: { path: string; phase: TakeoverJournal['phase']; startedAt: string; done: number; steps: number } | null;
  /** A journal written before the last reboot: not this host's state; the next start or stop removes it. */
  staleJournal: string | null;
  /** The pid of the command that holds the bridge's lock now (a start or stop under way), if any. */
  runningPid: number | null;
  bridge: (LinkSummary & { stpState: number; forwardDelay: number; nfCallIptables: boolean; nfCallIp6tables: boolean; ports: LinkSummary[] }) | null;
  /** The link that carries the host's addresses and routes (netdev). */
  hostSide: (LinkSummary & { addresses: string[]; routes: string[] }) | null;
  /** The physical NIC as a bridge port (pdev), when taken over. */
  uplink: LinkSummary | null;
}

function summary(l: { name: string; kind: string | null; mac: string; mtu: number; up: boolean; master: string | null }): LinkSummary {
  return { name: l.name, kind: l.kind, mac: l.mac, mtu: l.mtu, up: l.up, master: l.master };
}

export function buildBridgeStatus(spec: TakeoverSpec, host: HostState, journal: TakeoverJournal | undefined, journalFile: string, staleJournal: string | null = null, runningPid: number | null = null): BridgeStatus {
  const layout = classifyLayout(spec, host);
  let state: TakeoverState;
  let text: string;
  if (journal?.phase === 'starting' || journal?.phase === 'stopping') {
    state = 'half-done';
    const what = `a ${journal.phase === 'starting' ? 'start' : 'stop'}`;
    text = runningPid !== null ? `${what} is running now (pid ${runningPid}): the host's network is changing` : `${what} was interrupted; the next \`xennet bridge start\` or \`stop\` repairs it`;
  } else if (journal && layout.kind === 'taken-over') {
    state = 'taken-over';
    text = `${spec.netdev} carries the host's addresses through ${spec.vif0} on ${spec.bridge}; the NIC is ${spec.pdev}`;
  } else if (journal) {
    state = 'inconsistent';
    text = `the journal records a takeover but the links do not match it; \`xennet bridge stop\` restores the recorded state`;
  } else if (layout.kind === 'taken-over') {
    state = 'unmanaged';
    text = `${spec.bridge} bridges ${spec.pdev}, but xennet did not set it up`;
  } else if (layout.kind === 'original') {
    state = 'original';
    text = `not taken over: ${spec.netdev} is the NIC itself`;
  } else {
    state = 'inconsistent';
    text = layout.reason;
  }
  const b = linkByName(host, spec.bridge);
  const net = linkByName(host, spec.netdev);
  const pdev = linkByName(host, spec.pdev);
  return {
    spec,
    state,
    summary: text,
    journal: journal ? { path: journalFile, phase: journal.phase, startedAt: journal.startedAt, done: journal.phase === 'stopping' ? journal.undone : journal.done, steps: journal.ops.length } : null,
    staleJournal,
    runningPid,
    bridge:
      b && b.kind === 'bridge'
        ? {
            ...summary(b),
            stpState: b.bridge?.stpState ?? 0,
            forwardDelay: b.bridge?.forwardDelay ?? 0,
            nfCallIptables: b.bridge?.nfCallIptables ?? false,
            nfCallIp6tables: b.bridge?.nfCallIp6tables ?? false,
            ports: portsOf(host, spec.bridge).map(summary),
          }
        : null,
    hostSide: net
      ? {
          ...summary(net),
          addresses: addressesOn(host, spec.netdev).filter(isConfiguredAddress).map(describeAddress),
          routes: routesVia(host, spec.netdev).filter(isCarriedRoute).map(describeRoute),
        }
      : null,
    uplink: pdev ? summary(pdev) : null,
  };
}

const onOff = (v: boolean): string => (v ? 'on' : 'off');

export function renderBridgeStatus(s: BridgeStatus): string {
  const lines: string[] = [];
  lines.push(`bridge ${s.spec.bridge}: ${s.state}`);
  lines.push(`  ${s.summary}`);
  if (s.journal) lines.push(`  journal: ${s.journal.path} (${s.journal.phase}, since ${s.journal.startedAt})`);
  if (s.staleJournal) lines.push(`  journal: ${s.staleJournal} was written before the last reboot: ignored (the next \`xennet bridge start\` or \`stop\` removes it)`);
  if (s.bridge) {
    lines.push('');
    lines.push(`  ${s.bridge.name}  ${s.bridge.up ? 'UP' : 'DOWN'}  mtu ${s.bridge.mtu}  stp ${s.bridge.stpState === 0 ? 'off' : 'on'}  forward-delay ${s.bridge.forwardDelay / 100}s`);
    lines.push(`    netfilter: nf_call_iptables ${onOff(s.bridge.nfCallIptables)}, nf_call_ip6tables ${onOff(s.bridge.nfCallIp6tables)}`);
    const rows = s.bridge.ports.map((p) => {
      const role = p.name === s.spec.pdev ? 'uplink (NIC)' : p.name === s.spec.vif0 ? `host side, paired with ${s.spec.netdev}` : 'guest';
      return `    port ${p.name.padEnd(15)} ${(p.up ? 'UP' : 'DOWN').padEnd(5)} ${p.mac}  ${role}`;
    });
    lines.push(...(rows.length > 0 ? rows : ['    (no ports)']));
  }
  if (s.hostSide) {
    lines.push('');
    lines.push(`  host side ${s.hostSide.name} (${s.hostSide.kind ?? 'device'})  ${s.hostSide.up ? 'UP' : 'DOWN'}  ${s.hostSide.mac}  mtu ${s.hostSide.mtu}`);
    for (const a of s.hostSide.addresses) lines.push(`    address ${a}`);
    for (const r of s.hostSide.routes) lines.push(`    route   ${r}`);
  }
  return lines.join('\n');
}
