import assert from 'node:assert/strict';
import { errnoName, macToBuffer } from '../../src/bridge/nl/client.js';

describe('netlink client helpers', () => {
  it('parses the errno name out of the netlink package errors', () => {
    assert.equal(errnoName(new Error('Request rejected: EEXIST')), 'EEXIST');
    assert.equal(errnoName('Request rejected: EADDRNOTAVAIL'), 'EADDRNOTAVAIL');
    assert.equal(errnoName(new Error('something else')), 'something else');
  });
  it('encodes MACs and rejects malformed ones', () => {
    assert.deepEqual([...macToBuffer('fe:ff:ff:ff:ff:ff')], [254, 255, 255, 255, 255, 255]);
    assert.throws(() => macToBuffer('fe:ff:ff:ff:ff'));
    assert.throws(() => macToBuffer('zz:ff:ff:ff:ff:ff'));
  });
});
