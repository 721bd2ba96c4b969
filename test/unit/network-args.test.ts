import assert from 'node:assert/strict';
import { parseNetworkHookArgs } from '../../src/hooks/network-args.js';
import { XennetError } from '../../src/sys/errors.js';

describe('network-xennet argv', () => {
  it('takes the command and VAR=VAL words in any order', () => {
    assert.deepEqual(parseNetworkHookArgs(['start']), { command: 'start' });
    assert.deepEqual(parseNetworkHookArgs(['start', 'netdev=eth1', 'bridge=xenbr1', 'vifnum=1']), { command: 'start', netdev: 'eth1', bridge: 'xenbr1', vifnum: '1' });
    assert.deepEqual(parseNetworkHookArgs(['netdev=eth1', 'stop']), { command: 'stop', netdev: 'eth1' });
    assert.deepEqual(parseNetworkHookArgs(['status', 'antispoof=yes']), { command: 'status', antispoof: true });
  });
  it('treats an empty value as unset, like the shell scripts', () => {
    assert.deepEqual(parseNetworkHookArgs(['start', 'netdev=']), { command: 'start' });
  });
  for (const [argv, message] of [
    [[], /no command given/],
    [['restart'], /unknown command "restart"/],
    [['start', 'foo=1'], /unknown variable foo/],
    [['start', 'extra'], /unexpected argument "extra"/],
    [['start', 'antispoof=maybe'], /antispoof must be yes or no/],
  ] as [string[], RegExp][]) {
    it(`rejects ${JSON.stringify(argv)}`, () => {
      assert.throws(() => parseNetworkHookArgs(argv), (e: unknown) => e instanceof XennetError && e.code === 'usage' && message.test(e.message));
    });
  }
});
