/**
 * Traffic probe for the simulated host (demo and tests):
 *   probe-main listen tcp|udp PORT...        serve (TCP accept / UDP echo), print `ready`
 *   probe-main connect tcp|udp HOST PORT [SRC]  exit 0 when a connection opens / an echo returns
 *                                            within 1.5 s, else 1
 */
import { createSocket } from 'node:dgram';
import { connect, createServer } from 'node:net';

const [mode, proto, ...rest] = process.argv.slice(2);
if (mode === 'listen') {
  let pending = rest.length;
  const ready = (): void => {
    if (--pending === 0) process.stdout.write('ready\n');
  };
  for (const port of rest.map(Number)) {
    if (proto === 'tcp') {
      createServer((s) => s.end()).listen(port, '::', ready);
    } else {
      const u = createSocket('udp6');
      u.on('message', (m, r) => u.send(m, r.port, r.address));
      u.bind(port, '::', ready);
    }
  }
} else if (mode === 'connect') {
  const [host = '', port = '0', src] = rest;
  const fail = setTimeout(() => process.exit(1), 1500);
  if (proto === 'tcp') {
    const s = connect({ host, port: Number(port), ...(src ? { localAddress: src } : {}) }, () => {
      clearTimeout(fail);
      s.destroy();
      process.exit(0);
    });
    s.on('error', () => process.exit(1));
  } else {
    const u = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    u.on('message', () => {
      clearTimeout(fail);
      process.exit(0);
    });
    u.bind(src ? { address: src } : {}, () => u.send('probe', Number(port), host));
  }
} else {
  process.stderr.write('usage: probe-main listen|connect ...\n');
  process.exit(64);
}
