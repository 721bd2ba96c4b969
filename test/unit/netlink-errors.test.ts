import assert from 'node:assert/strict';
import { errnoName, macToBuffer, macToString } from '../../src/bridge/nl/client.js';
import { devconfValue, parseLinkMessage } from '../../src/bridge/nl/link-message.js';

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
  it('prints MACs as the kernel reads them, whatever their length', () => {
    assert.equal(macToString(Buffer.from([0xfe, 0xff, 0x0a, 0, 1, 0xab])), 'fe:ff:0a:00:01:ab');
    assert.equal(macToString(Buffer.from([7])), '07');
    assert.equal(macToString(Buffer.alloc(0)), '');
    assert.equal(macToString(undefined), '');
    // an InfiniBand-sized hardware address
    assert.equal(macToString(Buffer.alloc(20, 0x11)), Array(20).fill('11').join(':'));
  });
});

/** One netlink attribute, padded to 4 bytes. */
function attr(type: number, value: Buffer): Buffer {
  const b = Buffer.alloc((4 + value.length + 3) & ~3);
  b.writeUInt16LE(4 + value.length, 0);
  b.writeUInt16LE(type, 2);
  value.copy(b, 4);
  return b;
}
const u32le = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};

describe('link messages (RTM_NEWLINK) read for what xennet uses', () => {
  const ifinfo = (index: number, flags: number): Buffer => {
    const b = Buffer.alloc(16);
    b.writeInt32LE(index, 4);
    b.writeUInt32LE(flags, 8);
    return b;
  };
  const conf4 = Buffer.alloc(12);
  conf4.writeInt32LE(2, 8);
  const conf6 = Buffer.alloc(8);
  conf6.writeInt32LE(-1, 4);
  const message = Buffer.concat([
    ifinfo(7, 0x1 | 0x1000),
    attr(3, Buffer.from('vif3.0\0')),
    attr(1, Buffer.from([0xfe, 0xff, 0xff, 0xff, 0xff, 0xff])),
    attr(4, u32le(1500)),
    attr(7, Buffer.alloc(200)), // IFLA_STATS: passed over
    attr(10, u32le(4)),
    attr(5, u32le(12)),
    attr(0x8000 | 18, attr(1, Buffer.from('veth\0'))), // nested flag masked off
    attr(20, Buffer.from('guest three')), // an alias without its NUL
    attr(26, Buffer.concat([attr(2, attr(1, conf4)), attr(10, attr(2, conf6)), attr(7, attr(1, u32le(9)))])),
  ]);

  it('keeps the attributes read and passes over the others', () => {
    const m = parseLinkMessage(message);
    assert.equal(m.index, 7);
    assert.deepEqual([m.up, m.noarp, m.multicast], [true, false, true]);
    assert.equal(m.ifname, 'vif3.0');
    assert.deepEqual([...(m.address ?? [])], [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff]);
    assert.deepEqual([m.mtu, m.master, m.link, m.linkNetnsid], [1500, 4, 12, undefined]);
    assert.equal(m.ifalias, 'guest three');
    assert.deepEqual(m.linkinfo, attr(1, Buffer.from('veth\0')));
    assert.equal(devconfValue(m.inetConf, 2), 2);
    assert.equal(devconfValue(m.inet6Conf, 1), -1);
    assert.equal(devconfValue(m.inet6Conf, 2), undefined);
  });

  it('ends the walk at an attribute that runs past the message, keeping what came before', () => {
    const cut = Buffer.concat([ifinfo(9, 0x80), attr(3, Buffer.from('eth0\0')), Buffer.from([40, 0, 4, 0, 1, 2, 3, 4])]);
    const m = parseLinkMessage(cut);
    assert.deepEqual([m.index, m.ifname, m.mtu, m.up, m.noarp], [9, 'eth0', undefined, false, true]);
    // a string attribute with a NUL past its own end is read to its end only
    const name = Buffer.concat([ifinfo(2, 0), attr(3, Buffer.from('ab')), attr(4, u32le(0))]);
    assert.equal(parseLinkMessage(name).ifname, 'ab');
    // a u32 attribute too short to hold one is none
    assert.equal(parseLinkMessage(Buffer.concat([ifinfo(2, 0), attr(4, Buffer.from([1, 2]))])).mtu, undefined);
    assert.throws(() => parseLinkMessage(Buffer.alloc(8)), /a link message of 8 bytes/);
  });
});
