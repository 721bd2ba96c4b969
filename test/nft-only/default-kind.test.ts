/**
 * Run by test/nft-only/enter.ts, in its private mount namespace where the xtables programs are
 * hidden: the default backend follows what works here.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { defaultKind } from '../../src/firewall/engine.js';
import { run } from '../../src/sys/exec.js';

const must = async (file: string, args: string[]): Promise<void> => {
  const r = await run(file, args);
  assert.equal(r.code, 0, `${file} ${args.join(' ')}: ${r.stderr}`);
};

describe('the default backend on a host without the xtables programs', () => {
  it('is nftables while nft works, and xtables once nft is gone too', async () => {
    assert.equal(await defaultKind(), 'nftables');
    const dir = mkdtempSync('/run/xnt-no-nft-');
    const upper = join(dir, 'upper');
    const work = join(dir, 'work');
    mkdirSync(upper);
    mkdirSync(work);
    await must('/usr/bin/mknod', [join(upper, 'nft'), 'c', '0', '0']);
    await must('/usr/bin/mount', ['-t', 'overlay', 'xnt-no-nft', '-o', `lowerdir=/usr/sbin,upperdir=${upper},workdir=${work}`, '/usr/sbin']);
    try {
      assert.equal(await defaultKind(), 'xtables', 'no nft: the nftables backend cannot run');
    } finally {
      await must('/usr/bin/umount', ['/usr/sbin']);
      rmSync(dir, { recursive: true, force: true });
    }
    assert.equal(await defaultKind(), 'nftables', 'control: nft is back');
  });
});
