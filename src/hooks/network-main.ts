/**
 * Entry of hooks-bin/network-xennet, the network-script xend runs at start and stop. Loads only
 * the bridge code (no CLI framework).
 */
import { ExitCode, XennetError } from '../sys/errors.js';
import { createLogger } from '../sys/log.js';
import { parseNetworkHookArgs } from './network-args.js';

export async function main(argv: readonly string[]): Promise<number> {
  const log = createLogger({ tag: 'network-xennet' });
  try {
    const input = parseNetworkHookArgs(argv);
    const args = { netdev: input.netdev, bridge: input.bridge, vifnum: input.vifnum };
    const actions = await import('../bridge/actions.js');
    if (input.command === 'status') {
      const { renderBridgeStatus } = await import('../bridge/status.js');
      process.stdout.write(renderBridgeStatus(await actions.bridgeStatus(args)) + '\n');
      return ExitCode.ok;
    }
    if (input.antispoof) log.warning('antispoof=yes is ignored: guest anti-spoofing comes from the xennet rule file, not a FORWARD policy');
    const result = input.command === 'start' ? await actions.startBridge(args, log) : await actions.stopBridge(args, log);
    for (const line of actions.describeTakeoverResult(result)) log.info(line);
    return ExitCode.ok;
  } catch (e) {
    const err = e instanceof XennetError ? e : new XennetError('internal', e instanceof Error ? (e.stack ?? e.message) : String(e));
    log.err(err.describe());
    // xend only distinguishes zero from non-zero; keep usage errors at 1 like network-bridge.
    return err.code === 'usage' ? ExitCode.error : err.exitCode;
  }
}
