/** Sends crafted frames from one namespace and reports whether they arrive in another. */
import { fileURLToPath } from 'node:url';
import { start } from '../../../src/sys/exec.js';
import type { SimNetns } from '../../../src/sim/netns.js';
import { LineWaiter } from './lines.js';

export const framesPy = fileURLToPath(new URL('../../../../test/netns/fixtures/frames.py', import.meta.url));
export const probeJs = fileURLToPath(new URL('../../../src/sim/probe-main.js', import.meta.url));

export const hex = (s: string): string => Buffer.from(s).toString('hex');

/** Whether a frame carrying `needleHex` reaches `rxIface` in `rx` when `kind args` is sent from `tx`. */
export async function arrives(tx: SimNetns, rx: SimNetns, rxIface: string, needleHex: string, kind: string, args: string[], txIface = 'eth0'): Promise<boolean> {
  // The sniffer listens from 'ready' until told the sender is done, then 0.2 s more: however late
  // a busy machine runs the sender, its frames fall inside the window (a veth pair and the bridge
  // forward them while the sender's send() runs; they wait in the sniffer's socket until read).
  const sniffer = start('ip', ['netns', 'exec', rx.name, 'python3', framesPy, 'sniff', rxIface, needleHex, 'stdin:0.2']);
  try {
    const w = new LineWaiter(sniffer);
    await w.waitFor('ready', 30_000);
    const r = await tx.exec('python3', [framesPy, 'send', txIface, kind, ...args], { timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`frames.py send ${kind}: ${r.stderr}`);
    sniffer.stdin?.end('stop\n');
    const line = await w.waitFor(/^seen \d+$/, 30_000);
    return Number(line.split(' ')[1]) > 0;
  } finally {
    sniffer.kill('SIGKILL');
  }
}

/** TCP connect or UDP echo from `tx` to host:port (optionally from a source address). */
export async function reaches(tx: SimNetns, proto: 'tcp' | 'udp', host: string, port: number, src?: string): Promise<boolean> {
  const r = await tx.exec('node', [probeJs, 'connect', proto, host, String(port), ...(src ? [src] : [])], { timeoutMs: 5000 });
  return r.code === 0;
}

/** Starts probe listeners in `ns`; returns a stop function. */
export async function listen(ns: SimNetns, proto: 'tcp' | 'udp', ports: number[]): Promise<() => void> {
  const child = start('ip', ['netns', 'exec', ns.name, 'node', probeJs, 'listen', proto, ...ports.map(String)]);
  await new LineWaiter(child).waitFor('ready');
  return () => child.kill('SIGKILL');
}
