#!/usr/bin/env node
/**
 * xennet's command line. `xennet status` through a running daemon is answered before the parser
 * loads (quick-status.ts: the daemon renders it); everything else goes to the yargs root
 * (command-line.ts).
 */
import './early-signals.js';
import { quickStatus } from './quick-status.js';

const argv = process.argv.slice(2);
if (!(await quickStatus(argv, process.env))) await (await import('./command-line.js')).main(argv);
