/** xennet-bridge.service: the bridge takeover at boot (placeholder until the takeover work lands). */
export function bridgeUnitText(cli: readonly string[]): string {
  const c = cli.join(' ');
  return `[Unit]
Description=xennet: take the NIC over into the Xen bridge
Documentation=man:xennet(8)
After=network-pre.target networking.service
Before=xen.service xendomains.service xennet.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=${c} bridge start
ExecStop=${c} bridge stop

[Install]
WantedBy=multi-user.target
`;
}
