/**
 * Run inside a namespace: the links as xennet's netlink client reads them, from a dump (with each
 * link's IP-stack settings) and one by one by name, as JSON.
 */
import { NetlinkClient } from '../../../src/bridge/nl/client.js';
import { guestPortStack } from '../../../src/sys/sysctl.js';

const nl = new NetlinkClient();
try {
  const { links, settings } = await nl.listLinksWithSettings();
  const one = [];
  for (const l of links) one.push(await nl.getLink(l.name));
  const missing = await nl.getLink('xnt-none');
  // names that are a link's alternative names, not its own: none
  const altnames = [await nl.getLink('vifa-alt'), await nl.getLink('vifa-alternative-name')];
  const stack = Object.fromEntries(links.map((l) => [l.name, Object.fromEntries(guestPortStack.map((s) => [`${s.family}/${s.key}`, settings.get(l.name)?.[s.family](s.position)?.toString() ?? null]))]));
  process.stdout.write(`${JSON.stringify({ links, one, missing: missing ?? null, altnames: altnames.map((l) => l ?? null), stack })}\n`);
} finally {
  nl.close();
}
