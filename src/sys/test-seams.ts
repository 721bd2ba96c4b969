/**
 * Test-only seams, inert unless their XENNET_TEST_* variable is set: deterministic crash points
 * for the integration suites (a kill -9 at an exact step cannot be timed from outside).
 *
 *   XENNET_TEST_KILL_AT=<point>   SIGKILL this process when it reaches <point>
 *                                 (nftables:part-committed:<n>: after the n-th of a write's transactions)
 *   XENNET_TEST_NFT_BATCH_BYTES=<n>   nf_tables transactions of at most n bytes (nftables/backend.ts)
 *   XENNET_TEST_STALL_AT=<point>[@<ms>]  never go on from <point>, or only after <ms> (a step that
 *                                 hangs or is slow: what watchdogs are for); vif:imported:<command>
 *                                 stalls only that command's calls
 */
export function stallPoint(point: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const m = /^([^@]+)(?:@(\d+))?$/.exec(env['XENNET_TEST_STALL_AT'] ?? '');
  if (!m || m[1] !== point) return Promise.resolve();
  return new Promise<void>((resolve) => {
    if (m[2] !== undefined) setTimeout(resolve, Number(m[2]));
  });
}

export function killPoint(point: string, env: NodeJS.ProcessEnv = process.env): void {
  if (env['XENNET_TEST_KILL_AT'] === point) process.kill(process.pid, 'SIGKILL');
}
