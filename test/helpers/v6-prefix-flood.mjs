/**
 * One host with many IPv6 addresses flooding licgate's STATUS port, run inside a network namespace
 * of its own (control-refusals.test.ts sets up its lo with ::1 and the addresses): a test cannot
 * take those addresses from its own process, so this script does the client side there.
 *
 *   node v6-prefix-flood.mjs CLI CONFIG ADDR...
 *
 * Starts `licgate run --config CONFIG` (its log lines go to stderr), opens one silent connection to
 * its STATUS port from each ADDR, then asks STATUS from ::1 and reads /metrics from the admin port.
 * Prints {"reply": ..., "metrics": ...} as one line and stops licgate. Exit 1 on a missed deadline.
 */
import { spawn } from 'node:child_process';
import { get } from 'node:http';
import { connect } from 'node:net';

const [cli, config, ...from] = process.argv.slice(2);
const deadline = setTimeout(() => fail('deadline of 20 s missed'), 20_000);
const licgate = spawn(process.execPath, [cli, 'run', '--config', config], { stdio: ['ignore', 'pipe', 'inherit'] });
licgate.on('exit', (code, signal) => fail(`licgate exited early (${code ?? signal})`));

function fail(why) {
  process.stderr.write(`v6-prefix-flood: ${why}\n`);
  licgate.kill('SIGKILL');
  process.exit(1);
}

const started = await new Promise((resolve) => {
  let buf = '';
  licgate.stdout.setEncoding('utf8').on('data', (d) => {
    process.stderr.write(d);
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.includes('"licgate started"')) {
        // The line gives each listener as address:port ("[::]:41234").
        const { status, admin } = JSON.parse(line);
        resolve({ status: Number(/:(\d+)$/.exec(status)[1]), admin: Number(/:(\d+)$/.exec(admin)[1]) });
      }
    }
  });
});

const flood = await Promise.all(
  from.map(
    (localAddress) =>
      new Promise((resolve) => {
        const sock = connect({ host: '::1', port: started.status, localAddress, allowHalfOpen: true });
        sock.on('error', () => {});
        sock.once('connect', () => resolve(sock));
        sock.once('close', () => resolve(sock));
      }),
  ),
);

// The listener accepts in order: by the time this peer is answered or closed, each of the flood was
// taken or refused.
const reply = await new Promise((resolve) => {
  const sock = connect({ host: '::1', port: started.status, localAddress: '::1' });
  let got = '';
  sock.setEncoding('latin1');
  sock.on('data', (d) => (got += d));
  sock.on('error', () => {});
  sock.on('close', () => resolve(got));
  sock.on('connect', () => sock.write('STATUS\r\n'));
});

const metrics = await new Promise((resolve, reject) => {
  get({ host: '127.0.0.1', port: started.admin, path: '/metrics' }, (res) => {
    let body = '';
    res.setEncoding('utf8').on('data', (d) => (body += d));
    res.on('end', () => resolve(body));
  }).on('error', reject);
});

process.stdout.write(JSON.stringify({ reply, metrics }) + '\n');
for (const s of flood) s.destroy();
licgate.removeAllListeners('exit');
licgate.once('exit', () => clearTimeout(deadline));
licgate.kill('SIGTERM');
