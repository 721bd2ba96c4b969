/** The Node entry of vif-xennet: the call runs in this process (no daemon, or the daemon failed). */
process.exitCode = 1;
const { main } = await import('./vif-main.js');
process.exitCode = await main(process.argv.slice(2));
