/**
 * Parses xend's network-script call: `network-xennet start|stop|status [VAR=VAL ...]`, with
 * `VAR=VAL` words anywhere (xend appends the ones from `(network-script 'network-xennet
 * netdev=eth1')`). Known variables: netdev, bridge, vifnum, antispoof.
 */
import { usageError } from '../sys/errors.js';

export type NetworkCommand = 'start' | 'stop' | 'status';

export interface NetworkHookInput {
  command: NetworkCommand;
  netdev?: string;
  bridge?: string;
  vifnum?: string;
  /** Xen 3.0's antispoof=yes; xennet's firewall comes from the rule file instead. */
  antispoof?: boolean;
}

const known = new Set(['netdev', 'bridge', 'vifnum', 'antispoof']);

export function parseNetworkHookArgs(argv: readonly string[]): NetworkHookInput {
  const vars = new Map<string, string>();
  const words: string[] = [];
  for (const arg of argv) {
    const eq = arg.indexOf('=');
    if (eq > 0 && /^[A-Za-z_][A-Za-z0-9_]*$/.test(arg.slice(0, eq))) {
      const key = arg.slice(0, eq);
      if (!known.has(key)) throw usageError(`unknown variable ${key} (in ${JSON.stringify(arg)})`, `network-xennet takes ${[...known].join('=, ')}=`);
      vars.set(key, arg.slice(eq + 1));
    } else {
      words.push(arg);
    }
  }
  const [command, ...rest] = words;
  if (command !== 'start' && command !== 'stop' && command !== 'status') {
    throw usageError(command === undefined ? 'no command given' : `unknown command ${JSON.stringify(command)}`, 'usage: network-xennet start|stop|status [netdev=eth0] [bridge=xenbr0] [vifnum=0]');
  }
  if (rest.length > 0) throw usageError(`unexpected argument ${JSON.stringify(rest[0])}`, 'arguments after the command must be VAR=VAL');
  const input: NetworkHookInput = { command };
  for (const key of ['netdev', 'bridge', 'vifnum'] as const) {
    const v = vars.get(key);
    if (v !== undefined && v !== '') input[key] = v;
  }
  const spoof = vars.get('antispoof');
  if (spoof !== undefined) {
    if (!['yes', 'no'].includes(spoof)) throw usageError(`antispoof must be yes or no, not ${JSON.stringify(spoof)}`);
    input.antispoof = spoof === 'yes';
  }
  return input;
}
