/**
 * Test-only seams, inert unless their XENNET_TEST_* variable is set: deterministic crash points
 * for the integration suites (a kill -9 at an exact step cannot be timed from outside).
 *
 *   XENNET_TEST_KILL_AT=<point>   SIGKILL this process when it reaches <point>
 *                                 (nftables:part-committed:<n>: after the n-th of a write's transactions)
 *   XENNET_TEST_NFT_BATCH_BYTES=<n>   nf_tables transactions of at most n bytes (nftables/backend.ts)
 *   XENNET_TEST_STALL_AT=<point>  never go on from <point> (a step that hangs: what watchdogs are for)
 */
export function stallPoint(point: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  return env['XENNET_TEST_STALL_AT'] === point ? new Promise<void>(() => undefined) : Promise.resolve();
}

export function killPoint(point: string, env: NodeJS.ProcessEnv = process.env): void {
  if (env['XENNET_TEST_KILL_AT'] === point) process.kill(process.pid, 'SIGKILL');
}
