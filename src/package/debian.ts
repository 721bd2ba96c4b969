/**
 * The Debian package's metadata and maintainer scripts, as text (pure). The scripts do what
 * debhelper's dh_installsystemd snippets do: enable and start the daemon on install when systemd
 * runs, restart it on upgrade, stop it on remove, forget it on purge. The boot takeover unit is
 * installed but never enabled by the package: it renames the NIC an administrator may be logged
 * in over, so enabling it is the administrator's decision.
 */

export const PACKAGE = 'xennet';
export const DAEMON_UNIT = 'xennet.service';
export const BRIDGE_UNIT = 'xennet-bridge.service';
export const MAINTAINER = 'xennet developers <xennet-devel@lists.xennet.org>';

export interface ControlFields {
  version: string;
  architecture: string;
  installedSizeKiB: number;
  /** From dpkg-shlibdeps (the native netlink addon). */
  shlibs: string[];
  /** The package's synopsis line (under 80 characters). */
  description: string;
}

/** What the package needs at run time: Debian's own packages only. */
export const RUNTIME_DEPENDS = [
  'nodejs (>= 18.19)',
  'iproute2',
  // The default firewall backend reads its tables as text with nft where it cannot natively.
  'nftables',
  // modprobe: postinst loads br_netfilter now (modules-load.d does it at boot; the sandboxed
  // daemon cannot load modules).
  'kmod',
] as const;
/**
 * What the xtables backend (`backend: xtables`) needs, and what finds and removes what xennet
 * left in those tables after a switch: installed with the package unless recommends are off.
 * Address learning on that backend keeps each learning guest's bindings in ipsets.
 */
export const RUNTIME_RECOMMENDS = ['iptables', 'ebtables', 'ipset'] as const;
// bash (the vif hook), util-linux (flock) and bsdutils (logger) are Essential: never named.

export function controlText(f: ControlFields): string {
  const depends = [...RUNTIME_DEPENDS, ...f.shlibs].join(', ');
  return `Package: ${PACKAGE}
Version: ${f.version}
Architecture: ${f.architecture}
Maintainer: ${MAINTAINER}
Installed-Size: ${f.installedSizeKiB}
Depends: ${depends}
Recommends: ${RUNTIME_RECOMMENDS.join(', ')}
Suggests: xen-utils-common
Section: net
Priority: optional
Homepage: https://github.com/xennet/xennet
Description: ${f.description}
 xennet replaces Xen's network-bridge and vif-bridge scripts. It takes the
 NIC over into a bridge over rtnetlink (reversibly), attaches each guest's
 vif as the toolstack's vif-script (vif-xennet, for xl/libxl and xend), and
 installs each guest's firewall from one typed rule file: complete MAC, ARP,
 IPv4 and IPv6 anti-spoofing, allow rules, default verdicts and isolation,
 compiled to iptables/ebtables (physdev) or to nftables, applied atomically.
 .
 A resident daemon (xennet.service) serves the hooks in milliseconds and
 repairs rules another program removed. xennet-bridge.service performs the
 bridge takeover at boot; it is installed disabled.
`;
}

const guard = 'if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then';

/** postinst: debhelper's enable/start snippet for the daemon; the boot takeover only registered. */
export function postinstText(): string {
  return `#!/bin/sh
set -e

if [ "$1" = "configure" ] || [ "$1" = "abort-upgrade" ] || [ "$1" = "abort-deconfigure" ] || [ "$1" = "abort-remove" ]; then
\t# Hooks may start the daemon again (prerm kept them from it while the files were replaced).
\t[ -n "\${DPKG_ROOT:-}" ] || rm -f /run/${PACKAGE}/autostart.off
\tmkdir -p /var/lib/${PACKAGE}
\tchmod 0755 /var/lib/${PACKAGE}
\t# Bridged traffic through iptables: loaded at every boot by /usr/lib/modules-load.d/xennet.conf,
\t# and now, so the first guest after installing is firewalled without a reboot.
\tif [ -z "\${DPKG_ROOT:-}" ] && [ ! -d /proc/sys/net/bridge ]; then
\t\tmodprobe br_netfilter >/dev/null 2>&1 || echo "xennet: could not load br_netfilter: guests' firewall needs it (modprobe br_netfilter)" >&2
\tfi
\t# The daemon: enabled unless the administrator disabled it before (as dh_installsystemd).
\tif command -v deb-systemd-helper >/dev/null 2>&1; then
\t\tdeb-systemd-helper unmask '${DAEMON_UNIT}' >/dev/null || true
\t\tif deb-systemd-helper --quiet was-enabled '${DAEMON_UNIT}'; then
\t\t\tdeb-systemd-helper enable '${DAEMON_UNIT}' >/dev/null || true
\t\telse
\t\t\tdeb-systemd-helper update-state '${DAEMON_UNIT}' >/dev/null || true
\t\tfi
\t\t# The boot takeover renames the NIC: never enabled by the package.
\t\tdeb-systemd-helper update-state '${BRIDGE_UNIT}' >/dev/null || true
\tfi
\t${guard}
\t\tsystemctl --system daemon-reload >/dev/null || true
\t\tif [ -n "$2" ]; then
\t\t\tdeb-systemd-invoke restart '${DAEMON_UNIT}' >/dev/null || true
\t\telse
\t\t\tdeb-systemd-invoke start '${DAEMON_UNIT}' >/dev/null || true
\t\tfi
\tfi
\tif [ -z "$2" ]; then
\t\techo "xennet: point the toolstack at the hook (xl.conf: vif.default.script=\\"vif-xennet\\"),"
\t\techo "xennet: write /etc/xen/xennet.yaml (example: /usr/share/doc/xennet/examples/xennet.yaml),"
\t\techo "xennet: and check with 'xennet status'. See xennet(8)."
\tfi
fi

exit 0
`;
}

/**
 * prerm: stop the daemon on remove, and on upgrade too: a running daemon loads parts of the
 * program on first use, and between unpack and postinst's start those are the new version's
 * files (hooks run in-process meanwhile, from the new files). On remove the guests' firewall
 * stays (never opened silently).
 */
export function prermText(): string {
  return `#!/bin/sh
set -e

if [ "$1" = "remove" ] || [ "$1" = "upgrade" ] || [ "$1" = "deconfigure" ]; then
\t# No hook starts a daemon from files being replaced or removed: they run in-process meanwhile.
\tif [ -z "\${DPKG_ROOT:-}" ] && mkdir -p -m 0700 /run/${PACKAGE} 2>/dev/null; then
\t\techo "set by the xennet package ($1): hooks do not start a daemon" > /run/${PACKAGE}/autostart.off || true
\t\t# A hook starting one right now finishes first (the daemon it started is stopped below).
\t\tflock -w 25 /run/${PACKAGE}/autostart.lock true 2>/dev/null || true
\tfi
\t${guard}
\t\tdeb-systemd-invoke stop '${DAEMON_UNIT}' >/dev/null || true
\telif [ -z "\${DPKG_ROOT:-}" ] && [ -f /run/${PACKAGE}/daemon.pid ]; then
\t\t# No systemd: a daemon a hook started runs from the files about to go. SIGTERM: the calls
\t\t# in flight finish (at most 45 s).
\t\tpid=$(head -c 16 /run/${PACKAGE}/daemon.pid | tr -cd 0-9)
\t\tif [ -n "$pid" ] && tr '\\0' '\\n' < /proc/$pid/cmdline 2>/dev/null | grep -qx daemon; then
\t\t\tkill -TERM "$pid" 2>/dev/null || true
\t\t\ti=0
\t\t\twhile [ $i -lt 45 ] && kill -0 "$pid" 2>/dev/null; do sleep 1; i=$((i + 1)); done
\t\tfi
\tfi
fi
if [ "$1" = "remove" ]; then
\techo "xennet: the firewall of running guests stays in place: removing the package opens no guest."
\techo "xennet: to remove the firewall too, run 'xennet uninstall' before removing the package"
\techo "xennet: (or reinstall xennet and run it). Point the toolstack back at its own scripts first"
\techo "xennet: (xl.conf: vif.default.script): /etc/xen/scripts/vif-xennet stays until purge and"
\techo "xennet: fails every guest start without the program. xennet-bridge.service, if enabled, is"
\techo "xennet: not stopped: 'xennet bridge stop' restores the NIC."
fi

exit 0
`;
}

/**
 * postrm: reload systemd on remove; on purge, forget the units and remove the state directory,
 * except an active takeover's journal: without it `xennet bridge stop` (after a reinstall) could
 * never give the NIC back.
 */
export function postrmText(): string {
  return `#!/bin/sh
set -e

if [ "$1" = "remove" ]; then
\t${guard}
\t\tsystemctl --system daemon-reload >/dev/null || true
\tfi
fi

if [ "$1" = "purge" ]; then
\tif command -v deb-systemd-helper >/dev/null 2>&1; then
\t\tdeb-systemd-helper purge '${DAEMON_UNIT}' '${BRIDGE_UNIT}' >/dev/null || true
\t\tdeb-systemd-helper unmask '${DAEMON_UNIT}' '${BRIDGE_UNIT}' >/dev/null || true
\tfi
\tif ls /var/lib/${PACKAGE}/takeover-*.json >/dev/null 2>&1; then
\t\tfind /var/lib/${PACKAGE} -mindepth 1 -maxdepth 1 ! -name 'takeover-*.json' -exec rm -rf {} +
\t\techo "xennet: kept /var/lib/${PACKAGE}/takeover-*.json: the NIC is still taken over into a bridge."
\t\techo "xennet: reinstall xennet and run 'xennet bridge stop' to give it back, then remove that directory."
\telse
\t\trm -rf /var/lib/${PACKAGE}
\tfi
fi

exit 0
`;
}

/** changelog.Debian: one entry for the version built, dated by the last commit. */
export function changelogText(o: { version: string; date: string; commit: string }): string {
  return `${PACKAGE} (${o.version}) unstable; urgency=medium

  * Built from the xennet source tree${/^[0-9a-f]+$/.test(o.commit) ? ` at commit ${o.commit}` : ' (not a git checkout)'}.

 -- ${MAINTAINER}  ${o.date}
`;
}

export interface BundledPackage {
  name: string;
  version: string;
  license: string;
  /** Copyright lines from its license file, if any. */
  copyright: string[];
  /** Its license file's text. */
  licenseText?: string;
}

const indent = (text: string): string =>
  text
    .trim()
    .split('\n')
    .map((l) => (l.trim() === '' ? ' .' : ` ${l}`))
    .join('\n');

export const MIT_TEXT = `Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.`;

/**
 * debian/copyright (DEP-5): xennet itself, then every npm package bundled into it, each with the
 * license text it ships.
 */
export function copyrightText(o: { year: string; bundled: BundledPackage[] }): string {
  const out = [
    'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/',
    `Upstream-Name: ${PACKAGE}`,
    'Source: https://github.com/xennet/xennet',
    '',
    'Files: *',
    `Copyright: ${o.year} xennet developers`,
    'License: MIT',
    indent(MIT_TEXT),
  ];
  for (const p of [...o.bundled].sort((a, b) => a.name.localeCompare(b.name))) {
    out.push(
      '',
      `Files: usr/lib/xennet/node_modules/${p.name}/*`,
      `Copyright: ${p.copyright.length > 0 ? p.copyright.join('\n ') : `the authors of ${p.name}`}`,
      `License: ${p.license}`,
      `Comment: npm package ${p.name} ${p.version}, bundled into /usr/lib/xennet${p.licenseText ? '; its license file:' : ''}`,
    );
    if (p.licenseText) out.push(indent(p.licenseText));
  }
  return out.join('\n') + '\n';
}
