import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { loadConfigText } from '../config/load.js';
import { Daemon } from '../daemon.js';
import { ListenError } from '../errors.js';
import { createLogger } from '../observe/log.js';
import { parse, type Command } from './command.js';
import { runUntilSignal } from './run.js';
import { help } from './validate.js';

/** The embedded default: what `npm start` runs on a fresh machine. */
export const DEMO_CONFIG = `# licgate demo: two simulated license servers behind the proxy.
admin:
  listen: 127.0.0.1:8404
status:
  listen: 127.0.0.1:27100
log: { level: info, format: pretty }
shutdown_grace: 2s
frontends:
  - name: lmgrd
    listen: 127.0.0.1:27000
    backend: licenses
backends:
  - name: licenses
    balance: roundrobin
    failback: auto
    retries: 2
    check: { type: status, inter: 1s, fastinter: 250ms, downinter: 2s, rise: 2, fall: 2, timeout: 500ms }
    servers:
      - { name: primary, address: 127.0.0.1:27010, weight: 100 }
      - { name: backup,  address: 127.0.0.1:27011, weight: 100, backup: true }
`;

export const demo: Command = {
  name: 'demo',
  summary: 'simulated primary + backup license servers behind a proxy on 127.0.0.1:27000, admin on 127.0.0.1:8404',
  usage: 'licgate demo',
  async run(args) {
    const { values } = parse(args, {});
    if (values.help) return help(this);
    const cfg = loadConfigText(DEMO_CONFIG, '<demo>');
    const sims = [startSimulator('primary', '127.0.0.1:27010'), startSimulator('backup', '127.0.0.1:27011')];
    await Promise.all(sims.map((s) => once(s.stdout!, 'data')));
    const daemon = new Daemon(cfg, createLogger(cfg.log));
    const stopSims = async (): Promise<void> => {
      for (const s of sims) s.kill('SIGTERM');
    };
    try {
      await daemon.start();
    } catch (e) {
      await stopSims();
      if (e instanceof ListenError) {
        process.stderr.write(`licgate demo: ${e.message}\n(is another demo or license server running?)\n`);
        return 1;
      }
      throw e;
    }
    process.stdout.write(`
licgate demo is running.
  proxy       127.0.0.1:27000  -> primary 127.0.0.1:27010 (pid ${sims[0]!.pid}), backup 127.0.0.1:27011 (pid ${sims[1]!.pid})
  admin       http://127.0.0.1:8404/status   /health   /ready
  STATUS      127.0.0.1:27100 (and in-band on 27000)

A demo client connects every 2 s and prints which server answered. Try, in another terminal:
  kill ${sims[0]!.pid}                       # kill the primary: the next sessions go to the backup
  curl -s 127.0.0.1:8404/status         # servers, states, tiers, connections
  curl -s 127.0.0.1:8404/health         # what keepalived's vrrp_script asks
  printf 'STATUS\\r\\n' | nc -q1 127.0.0.1 27000   # in-band STATUS, answered by licgate itself
Ctrl-C stops everything.

`);
    const client = setInterval(demoClient, 2000);
    return runUntilSignal(daemon, cfg.shutdown_grace, async () => {
      clearInterval(client);
      await stopSims();
    });
  },
};

/** One short session through the proxy, the way a license client would open one. */
function demoClient(): void {
  const sock = connect({ host: '127.0.0.1', port: 27000 });
  let reply = '';
  sock.setEncoding('utf8');
  sock.setTimeout(3000, () => sock.destroy(new Error('no reply within 3s')));
  sock.on('connect', () => sock.write('HELLO\nCHECKOUT solver 1\n'));
  sock.on('data', (d: string) => {
    reply += d;
    if (reply.split('\n').length > 2) sock.end();
  });
  sock.on('close', () => {
    const [hello = '', grant = ''] = reply.trim().split('\n');
    const who = hello.replace(/^HELLO /, '');
    process.stdout.write(who ? `client: answered by ${who} (${grant.trim()})\n` : 'client: no answer\n');
  });
  sock.on('error', (e) => process.stdout.write(`client: failed: ${e.message}\n`));
}

function startSimulator(name: string, listen: string): ChildProcess {
  const main = fileURLToPath(new URL('./main.js', import.meta.url));
  const child = spawn(process.execPath, [main, 'simulate', '--listen', listen, '--name', name, '--tokens', '50'], { stdio: ['ignore', 'pipe', 'inherit'] });
  child.unref();
  process.once('exit', () => child.kill('SIGTERM'));
  return child;
}
