/** `xennet bridge start|stop|status`: the Xen 3.0 netloop bridge takeover (replaces network-bridge). */
import type { Argv, CommandModule } from 'yargs';
import { runCommand } from '../run-command.js';

interface BridgeArgs {
  netdev?: string;
  bridge?: string;
  vifnum?: number;
  json: boolean;
  force: boolean;
  dryRun: boolean;
}

function options(y: Argv): Argv<BridgeArgs> {
  return y
    .option('netdev', { type: 'string', describe: 'the NIC that carries the host addresses (default: the device of the default route, IPv4 else IPv6)' })
    .option('bridge', { type: 'string', describe: 'the bridge to create or reuse (default xenbr<vifnum>)' })
    .option('vifnum', { type: 'number', describe: 'number of the veth<N>/vif0.<N> pair and xenbr<N> (default: N for a NIC eth<N>, else 0)' })
    .option('json', { type: 'boolean', default: false, describe: 'print machine-readable JSON' })
    .option('dry-run', { type: 'boolean', default: false, describe: 'start/stop: print the steps, change nothing' })
    .option('force', { type: 'boolean', default: false, describe: 'start: take over a NIC a network manager claims; stop: detach guest vifs still on the bridge' }) as unknown as Argv<BridgeArgs>;
}

const takeoverArgs = (a: BridgeArgs): { netdev?: string; bridge?: string; vifnum?: number } => ({ netdev: a.netdev, bridge: a.bridge, vifnum: a.vifnum });

export const bridgeCommand: CommandModule<object, BridgeArgs> = {
  command: 'bridge <action>',
  describe: 'take the NIC over into a Xen bridge, restore it, or show the layout',
  builder: (y) =>
    options(y)
      .positional('action', { choices: ['start', 'stop', 'status'] as const, describe: 'start | stop | status' })
      .example('$0 bridge start', 'eth0 -> peth0 on xenbr0; host addresses and routes move to the new eth0')
      .example('$0 bridge start --dry-run', 'list the steps of a start, change nothing')
      .example('$0 bridge status --json', 'the layout as JSON')
      .example('$0 bridge stop', 'restore the exact pre-takeover state') as unknown as Argv<BridgeArgs>,
  handler: async (argv) => {
    const action = (argv as unknown as { action: 'start' | 'stop' | 'status' }).action;
    await runCommand(argv.json, async () => {
      const { createLogger } = await import('../../sys/log.js');
      const actions = await import('../../bridge/actions.js');
      const log = createLogger({ tag: 'xennet' });
      if (action === 'status') {
        const { renderBridgeStatus } = await import('../../bridge/status.js');
        const status = await actions.bridgeStatus(takeoverArgs(argv));
        return { json: status, text: renderBridgeStatus(status), exitCode: status.state === 'inconsistent' || (status.state === 'half-done' && status.runningPid === null) ? 1 : 0 };
      }
      const opts = { force: argv.force, dryRun: argv.dryRun };
      const result = action === 'start' ? await actions.startBridge(takeoverArgs(argv), log, opts) : await actions.stopBridge(takeoverArgs(argv), log, opts);
      return { json: result, text: actions.describeTakeoverResult(result).join('\n') };
    });
  },
};
