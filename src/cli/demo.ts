import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { loadConfigText } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { Daemon } from '../daemon.js';
import { ListenError } from '../errors.js';
import { createLogger } from '../observe/log.js';
import { help, parse, type Command } from './command.js';
import { runUntilSignal } from './run.js';

/** The embedded default: what `npm start` runs on a fresh machine. */
export const DEMO_CONFIG = `# licgate demo: two simulated FlexLM-like license servers behind the proxy.
# A client asks lmgrd (27000) for the vendor daemon's port, then connects to that port (27001) on the
# same address; stick: source sends both connections of a client to the same server.
admin:
  listen: 127.0.0.1:8404
status:
  listen: 127.0.0.1:27100
log: { level: info, format: pretty }
shutdown_grace: 2s
shutdown_delay: 0s
frontends:
  - name: lmgrd
    listen: 127.0.0.1:27000
    backend: licenses
  - name: vendor
    listen: 127.0.0.1:27001
    backend: licenses
    server_port: 27001
backends:
  - name: licenses
    balance: roundrobin
    stick: source
    failback: auto
    retries: 2
    check: { type: status, inter: 1s, fastinter: 250ms, downinter: 2s, rise: 2, fall: 2, timeout: 500ms }
    servers:
      - { name: primary, address: 127.0.0.2:27000, weight: 100 }
      - { name: backup,  address: 127.0.0.3:27000, weight: 100, backup: true }
`;

export const demo: Command = {
  name: 'demo',
  summary: 'simulated FlexLM primary + backup behind a proxy on 127.0.0.1:27000 (lmgrd) and 27001 (vendor), admin on 127.0.0.1:8404',
  usage: 'licgate demo',
  async run(args) {
    const { values } = parse(args, {});
    if (values.help) return help(this);
    // Named for the log lines and errors that name a config's file; there is no file to reload.
    const readDemoConfig = (): Config => loadConfigText(DEMO_CONFIG, "the demo's embedded config");
    const cfg = readDemoConfig();
    // Each simulated server has its own loopback address: FlexLM fixes the vendor port, so both use 27000 and 27001.
    const sims = [startSimulator('primary', '127.0.0.2'), startSimulator('backup', '127.0.0.3')];
    const stopSims = async (): Promise<void> => {
      for (const s of sims) s.kill('SIGTERM');
    };
    const listening = await Promise.all(sims.map((s) => Promise.race([once(s.stdout!, 'data').then(() => true), once(s, 'exit').then(() => false)])));
    if (listening.includes(false)) {
      await stopSims();
      process.stderr.write('licgate demo: a simulated license server could not start (see above); it needs 127.0.0.2 and 127.0.0.3 on the loopback interface (Linux has them; on macOS: sudo ifconfig lo0 alias 127.0.0.2 up; sudo ifconfig lo0 alias 127.0.0.3 up)\n');
      return 1;
    }
    // SIGHUP re-reads the embedded config: `licgate run`'s reload would look for a file of that name.
    const daemon = new Daemon(cfg, createLogger(cfg.log), { reread: readDemoConfig });
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
  lmgrd       127.0.0.1:27000  -> primary 127.0.0.2:27000 (pid ${sims[0]!.pid}), backup 127.0.0.3:27000 (pid ${sims[1]!.pid})
  vendor      127.0.0.1:27001  -> port 27001 of the same server (stick: source)
  admin       http://127.0.0.1:8404/status   /health   /ready
  STATUS      127.0.0.1:27100 (and in-band on 27000)

Every 2 s a FlexLM-like client asks lmgrd for the vendor port, then checks out a license there.
Try, in another terminal:
  kill ${sims[0]!.pid}                       # kill the primary: the client's next checkout goes to the backup
  curl -s 127.0.0.1:8404/status         # servers, states, tiers, connections
  curl -s 127.0.0.1:8404/health         # what keepalived's vrrp_script asks
  printf 'STATUS\\r\\n' | nc -q1 127.0.0.1 27000   # in-band STATUS, answered by licgate itself
Ctrl-C stops everything.

`);
    const client = setInterval(demoClient, 2000);
    return runUntilSignal(daemon, async () => {
      clearInterval(client);
      await stopSims();
    });
  },
};

/** One checkout through the proxy the way a FlexLM client does it: lmgrd for the vendor port, then the vendor daemon. */
function demoClient(): void {
  void (async () => {
    const vendor = /^VENDOR (\d+) (\S+)$/.exec(await ask(27000, 'HELLO'));
    if (!vendor) throw new Error('lmgrd gave no VENDOR line');
    const grant = await ask(Number(vendor[1]), `CHECKOUT solver 1 ${vendor[2]}`);
    process.stdout.write(`client: lmgrd 27000 said VENDOR ${vendor[1]}; vendor ${vendor[1]}: ${grant}\n`);
  })().catch((e: Error) => process.stdout.write(`client: failed: ${e.message}\n`));
}

/** One request line to 127.0.0.1:`port`, one reply line back (at most 3 s and 1 KiB). */
function ask(port: number, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: '127.0.0.1', port });
    let reply = '';
    sock.setEncoding('utf8');
    sock.setTimeout(3000, () => sock.destroy(new Error(`no reply on ${port} within 3s`)));
    sock.on('connect', () => sock.write(`${line}\n`));
    sock.on('data', (d: string) => {
      reply += d;
      const nl = reply.indexOf('\n');
      if (nl >= 0 || reply.length > 1024) {
        sock.end();
        resolve(reply.slice(0, nl >= 0 ? nl : 1024).trim());
      }
    });
    sock.on('error', reject);
    sock.on('close', () => reject(new Error(`connection to ${port} closed without a reply`)));
  });
}

function startSimulator(name: string, host: string): ChildProcess {
  const main = fileURLToPath(new URL('./main.js', import.meta.url));
  const args = ['simulate', '--flexlm', '--listen', `${host}:27000`, '--vendor-port', '27001', '--name', name, '--tokens', '50'];
  const child = spawn(process.execPath, [main, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  child.unref();
  process.once('exit', () => child.kill('SIGTERM'));
  return child;
}
