/**
 * What `xennet --help` says beyond its commands (exit codes, environment, files), kept as data:
 * the help epilogue and the man page xennet(8) are both written from it.
 */
import { DEFAULT_RULES_PATH } from '../config/paths.js';

export const EXIT_CODES: readonly (readonly [number, string])[] = [
  [0, 'success, or nothing to do'],
  [1, 'error, refusal, or (status) a problem found; the message says what failed, on which object and what to do, and nothing that was working was changed'],
  [2, 'plan: changes pending'],
  [64, 'usage error'],
];

export const ENVIRONMENT: readonly (readonly [string, string])[] = [
  ['XENNET_RULES', `the rule file (default ${DEFAULT_RULES_PATH}; a file named here must exist)`],
  ['XENNET_STATE_DIR', 'state directory (default /var/lib/xennet): takeover journal, firewall index, record of hook calls'],
  ['XENNET_BACKEND', 'xtables or nftables: the firewall backend when the rule file has no backend: (default: the one installed; on a host with none, nftables where nf_tables and nft work, else xtables)'],
  ['XENNET_IPTABLES', 'nft or legacy: force the iptables variant of the xtables backend (default: detected)'],
  ['XENSTORED_PATH', 'xenstore socket (else $XENSTORED_RUNDIR/socket, /var/run/xenstored/socket, /dev/xen/xenbus)'],
  ['XENNET_FIREWALL', 'off: the vif hook only attaches the vif'],
  ['XENNET_SYSLOG', '0: hooks log to stderr only'],
  ['XENNET_HOTPLUG_LOCK_DIR', 'hotplug lock directory (default /var/run/xen-hotplug, shared with Xen\'s scripts)'],
  ['XENNET_RUN_DIR', 'the daemon\'s socket, FIFO and pid file (default /run/xennet)'],
];

export const FILES: readonly (readonly [string, string])[] = [
  [DEFAULT_RULES_PATH, 'the rule file (see xennet.yaml(5)); when absent, every guest gets anti-spoofing from xenstore\'s mac and ip'],
  ['/etc/xen/scripts/vif-xennet', 'the vif-script (xl.conf: vif.default.script="vif-xennet")'],
  ['/etc/xen/scripts/network-xennet', 'the network-script of xend'],
  ['/var/lib/xennet', 'state: the firewall index, the takeover journal, and hooks.log (the last hook calls, for status GUEST)'],
  ['/run/xennet', 'the daemon\'s socket, FIFO and pid file'],
  ['/var/run/xen-hotplug/iptables', 'Xen\'s host-wide hotplug lock, shared with Xen\'s own scripts'],
];

/** Words of `text` in lines of at most `width` characters, the later ones indented by `indent`. */
export function wrapWords(text: string, width: number, indent = ''): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter((w) => w !== '')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = indent + word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(line);
  return lines;
}

/** The help epilogue of `xennet`, wrapped at word boundaries to fit `width`. */
export function helpEpilogue(width = 100): string {
  const w = Math.max(40, width - 2);
  return [
    ...wrapWords(`Exit codes: ${EXIT_CODES.map(([c, m]) => `${c} ${m.split(';')[0]}`).join('; ')}.`, w),
    '',
    'Environment:',
    ...ENVIRONMENT.flatMap(([k, v]) => wrapWords(`${k}: ${v}`, w - 2, '    ').map((l) => `  ${l}`)),
    '',
    'Docs: man xennet, man xennet.yaml; docs/ in the source tree.',
  ].join('\n');
}
