import { createServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import type { HostPort } from '../config/address.js';

/**
 * A small simulated license server, for the demo and the tests. Line protocol, one command per line:
 *
 *   STATUS                  → "Server Status: Running" block (design.md), then close
 *   HELLO                   → HELLO <name>
 *   CHECKOUT <feature> <n>  → GRANTED <handle> | DENIED <reason>
 *   CHECKIN <handle>        → OK | ERROR unknown handle
 *   anything else           → ERROR unknown command
 *
 * Tokens form one pool; a connection's tokens are released when it closes, as FlexLM does when a
 * client's vendor-daemon connection drops. Lines are limited to 1 KiB (longer: the peer is cut off).
 */
export interface SimulatorOptions {
  listen: HostPort;
  name: string;
  tokens: number;
}

const MAX_LINE = 1024;

export class LicenseSimulator {
  private readonly server: NetServer;
  private readonly sockets = new Set<Socket>();
  private nextHandle = 1;
  inUse = 0;
  connections = 0;

  constructor(readonly opts: SimulatorOptions) {
    this.server = createServer({ allowHalfOpen: false }, (s) => this.accept(s));
  }

  listen(): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host: this.opts.listen.host, port: this.opts.listen.port }, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  /** Stops listening and drops every client, as a crashed server would. */
  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => (this.server.listening ? this.server.close(() => resolve()) : resolve()));
  }

  private accept(sock: Socket): void {
    this.sockets.add(sock);
    this.connections++;
    const held = new Map<string, number>();
    let buf = '';
    sock.setEncoding('utf8');
    sock.setNoDelay(true);
    sock.on('error', () => sock.destroy());
    sock.on('close', () => {
      this.sockets.delete(sock);
      for (const n of held.values()) this.inUse -= n;
      held.clear();
    });
    sock.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).replace(/\r$/, '');
        buf = buf.slice(nl + 1);
        const reply = this.answer(line.trim(), held);
        if (reply === 'STATUS') {
          sock.end(`Server Status: Running\r\nBackend: ${this.opts.name}\r\nTier: active\r\nServers: 1/1 up\r\n`);
          return;
        }
        sock.write(reply + '\n');
      }
      if (buf.length > MAX_LINE) sock.destroy();
    });
  }

  private answer(line: string, held: Map<string, number>): string {
    const [cmd = '', a, b] = line.split(/\s+/);
    switch (cmd.toUpperCase()) {
      case 'STATUS':
        return 'STATUS';
      case 'HELLO':
        return `HELLO ${this.opts.name}`;
      case 'CHECKOUT': {
        const count = b === undefined ? 1 : Number(b);
        if (!a || !Number.isInteger(count) || count < 1) return 'DENIED usage: CHECKOUT <feature> <count>';
        if (this.inUse + count > this.opts.tokens) return `DENIED no tokens (${this.opts.tokens - this.inUse} free)`;
        const handle = `${this.opts.name}-${this.nextHandle++}`;
        held.set(handle, count);
        this.inUse += count;
        return `GRANTED ${handle}`;
      }
      case 'CHECKIN': {
        const n = a ? held.get(a) : undefined;
        if (n === undefined) return 'ERROR unknown handle';
        held.delete(a!);
        this.inUse -= n;
        return 'OK';
      }
      default:
        return 'ERROR unknown command';
    }
  }
}
