/**
 * The systemd unit of the boot takeover, `xennet-bridge.service`: `xennet bridge start` once
 * the NIC is up with its addresses, before Xen's services create guests, and `bridge stop` at
 * shutdown after they are gone.
 *
 * Ordering, for Debian 12 (xen-utils-common ships SysV scripts only; systemd turns them into
 * xen.service and xendomains.service, the latter After=network-online.target through its
 * `$network`):
 *
 * - After=networking.service ifupdown-wait-online.service network.target: ifupdown has brought
 *   up the NIC ("auto" in networking.service, "allow-hotplug" awaited by
 *   ifupdown-wait-online.service), so the default route tells which NIC to take and its
 *   addresses and routes are there to be carried over. At shutdown the order reverses: the
 *   takeover is undone before ifupdown deconfigures the NIC.
 * - Wants=network-online.target: pulls ifupdown-wait-online.service in on a host where nothing
 *   else asks for it.
 * - Before=network-online.target: services that wait for the network find it in its final
 *   layout, not in the middle of the takeover's down/rename/up.
 * - Before=xen.service xendomains.service (Debian's), xenstored.service (upstream Xen's units):
 *   guests, whose vifs go onto the bridge, start after it exists, and at shutdown are stopped
 *   before it is taken apart.
 */

export const bridgeUnitName = 'xennet-bridge.service';

/** The text of xennet-bridge.service; `cliCommand` is how to run the xennet CLI (an absolute path first). */
export function bridgeUnitText(cliCommand: readonly string[]): string {
  if (cliCommand.length === 0) throw new Error('bridgeUnitText: empty command');
  const cli = cliCommand.map(quoteArg).join(' ');
  return [
    `# ${bridgeUnitName}: the boot takeover of xennet (xennet bridge start/stop)`,
    '[Unit]',
    'Description=xennet: take the NIC over into the Xen bridge (xenbr0) at boot',
    'Documentation=man:xennet(8)',
    'After=network.target networking.service ifupdown-wait-online.service',
    'Wants=network-online.target',
    'Before=network-online.target xen.service xendomains.service xenstored.service',
    '',
    '[Service]',
    'Type=oneshot',
    'RemainAfterExit=yes',
    `ExecStart=${cli} bridge start`,
    `ExecStop=${cli} bridge stop`,
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

/** One word of an Exec= line: quoted when it holds a space, quote, backslash or a specifier. */
function quoteArg(arg: string): string {
  if (/[\n\r]/.test(arg)) throw new Error(`bridgeUnitText: ${JSON.stringify(arg)} holds a line break`);
  const escaped = arg.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  return /[\s"'\\;]/.test(escaped) || escaped === '' ? `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"` : escaped;
}
