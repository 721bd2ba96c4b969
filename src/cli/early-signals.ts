/**
 * Imported first by the CLI entry: `xennet daemon` must not die of a SIGHUP (`systemctl reload`)
 * that arrives while its modules load, before the daemon handles it (the rule file is read at
 * start anyway, so an early one needs no further action).
 */
if (process.argv[2] === 'daemon') process.on('SIGHUP', () => undefined);
export {};
