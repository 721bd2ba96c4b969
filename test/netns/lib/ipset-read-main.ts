/** Run inside a namespace: its ipsets' names as xennet reads them over nfnetlink, as JSON. */
import { ipsetNamesNative } from '../../../src/bridge/nl/ipset.js';

process.stdout.write(`${JSON.stringify(await ipsetNamesNative())}\n`);
