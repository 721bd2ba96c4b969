/**
 * The systemd unit of the daemon (xennet.service), for the Debian package and for
 * `xennet install-hooks`. It runs as root, but with the capabilities it needs only, a read-only
 * view of the system and a system call filter: `systemd-analyze security` scores it in CI.
 */
import { DAEMON_NODE_FLAGS } from '../daemon/paths.js';

/**
 * What the daemon needs of root, each shown by the system suite (which runs the installed
 * ExecStart under exactly this bounding set):
 * - CAP_NET_ADMIN: rtnetlink (links, bridge ports, sysctls are plain files), nfnetlink and the
 *   restore tools;
 * - CAP_NET_RAW: iptables-legacy's raw socket, ebtables;
 * - CAP_SYS_PTRACE: the reply to a hook goes through the hook client's pipe, opened as
 *   /proc/<pid>/fd/3; the kernel's ptrace access check refuses that to a process with fewer
 *   capabilities than the client (which the toolstack runs as full root).
 */
export const DAEMON_CAPABILITIES = ['CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_SYS_PTRACE'] as const;

/** The directories the daemon writes; everything else of the file system is read-only to it. */
export const DAEMON_WRITABLE = ['/var/lib/xennet', '/run/xennet', '/run/xen-hotplug', '/proc/sys/net'] as const;

export interface DaemonUnitOptions {
  /** The Node.js binary (absolute). */
  node: string;
  /** The CLI entry (absolute). */
  cli: string;
  /** Who wrote the unit (a comment). */
  writtenBy: string;
}

export function daemonUnitText(o: DaemonUnitOptions): string {
  const cli = [o.node, ...DAEMON_NODE_FLAGS, o.cli].join(' ');
  return `# xennet.service: ${o.writtenBy}.
[Unit]
Description=xennet: Xen guest networking and firewall controller
Documentation=man:xennet(8)
# Xen's store: xenstored.service (upstream Xen) or xen.service (Debian's xen-utils); either may
# be absent (the daemon then waits for the store and retries).
After=network.target xenstored.service xen.service proc-xen.mount xennet-bridge.service
Before=xendomains.service

[Service]
Type=simple
ExecStart=${cli} daemon
ExecReload=${[o.node, o.cli].join(' ')} daemon --reload
Restart=on-failure
RestartSec=1
KillSignal=SIGTERM
TimeoutStopSec=45

# Root, but only with what the daemon is shown to need (see DAEMON_CAPABILITIES in the source).
CapabilityBoundingSet=${DAEMON_CAPABILITIES.join(' ')}
AmbientCapabilities=
NoNewPrivileges=yes
# A read-only system except its state, its run directory, Xen's hotplug lock and /proc/sys/net.
ProtectSystem=strict
StateDirectory=xennet
RuntimeDirectory=xennet
RuntimeDirectoryMode=0700
RuntimeDirectoryPreserve=yes
# Xen's hotplug lock directory (shared with Xen's scripts) and iptables-legacy's lock file must
# exist before the sandbox is set up, to be bound writable into it.
ExecStartPre=+/bin/mkdir -p /run/xen-hotplug
ExecStartPre=+/usr/bin/touch /run/xtables.lock
# The metrics go to prometheus-node-exporter's textfile directory when it is there (at the
# daemon's start: installed later, it needs a restart of the daemon).
ReadWritePaths=${DAEMON_WRITABLE.join(' ')} /run/xtables.lock -/run/xenstored -/var/lib/prometheus/node-exporter
ProtectHome=yes
PrivateTmp=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RemoveIPC=yes
KeyringMode=private
UMask=0022
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_INET AF_INET6
IPAddressDeny=any
# /dev/xen/xenbus: xenstore when there is no xenstored socket (a dom0 with a xenstore stub domain).
DevicePolicy=closed
DeviceAllow=/dev/xen/xenbus rw

[Install]
WantedBy=multi-user.target
`;
}
