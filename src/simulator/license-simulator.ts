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
 * The two-port FlexLM-like mode (lmgrd + vendor daemon, tickets) is flexlm-simulator.ts.
 */
export interface SimulatorOptions {
  listen: HostPort;
  name: string;
  tokens: number;
}

const MAX_LINE = 1024;

/** The tokens a connection holds, by handle; released when the connection closes. */
export type Held = Map<string, number>;
/** One request line → one reply line, or 'STATUS' for the status block (then close). */
export type Answer = (line: string, held: Held) => string;

export class LicenseSimulator {
  private readonly server: NetServer;
  private readonly sockets = new Set<Socket>();
  private nextHandle = 1;
  inUse = 0;
  connections = 0;

  constructor(readonly opts: SimulatorOptions) {
    this.server = this.lineServer((line, held) => this.answerOnListen(line, held));
  }

  listen(): Promise<AddressInfo> {
    return listenOn(this.server, this.opts.listen);
  }

  address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  /** Stops listening and drops every client, as a crashed server would. */
  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => (this.server.listening ? this.server.close(() => resolve()) : resolve()));
  }

  /** A listener that speaks the line protocol through `answer`; every connection counts and holds tokens. */
  protected lineServer(answer: Answer): NetServer {
    return createServer({ allowHalfOpen: false }, (s) => this.accept(s, answer));
  }

  /** What the `listen` port speaks: the plain protocol here, lmgrd's in FlexLM mode. */
  protected answerOnListen(line: string, held: Held): string {
    return this.answer(line, held);
  }

  private accept(sock: Socket, answer: Answer): void {
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
        const reply = answer(line.trim(), held);
        if (reply === 'STATUS') {
          sock.end(`Server Status: Running\r\nBackend: ${this.opts.name}\r\nTier: active\r\nServers: 1/1 up\r\n`);
          return;
        }
        sock.write(reply + '\n');
      }
      if (buf.length > MAX_LINE) sock.destroy();
    });
  }

  /** The plain protocol (module header). */
  protected answer(line: string, held: Held): string {
    const [cmd = '', ...args] = line.split(/\s+/);
    switch (cmd.toUpperCase()) {
      case 'STATUS':
        return 'STATUS';
      case 'HELLO':
        return `HELLO ${this.opts.name}`;
      case 'CHECKOUT':
        return this.checkout(args, held);
      case 'CHECKIN': {
        const handle = args[0];
        const n = handle ? held.get(handle) : undefined;
        if (n === undefined) return 'ERROR unknown handle';
        held.delete(handle!);
        this.inUse -= n;
        return 'OK';
      }
      default:
        return 'ERROR unknown command';
    }
  }

  /** CHECKOUT <feature> [<count>] (`args`: the words after CHECKOUT). */
  protected checkout(args: readonly string[], held: Held): string {
    const [feature, countText] = args;
    const count = countText === undefined ? 1 : Number(countText);
    if (!feature || !Number.isInteger(count) || count < 1) return 'DENIED usage: CHECKOUT <feature> <count>';
    if (this.inUse + count > this.opts.tokens) return `DENIED no tokens (${this.opts.tokens - this.inUse} free)`;
    const handle = `${this.opts.name}-${this.nextHandle++}`;
    held.set(handle, count);
    this.inUse += count;
    return `GRANTED ${handle}`;
  }
}

/** Listens on `at` and resolves with the bound address (port 0 picks one). */
export function listenOn(server: NetServer, at: HostPort): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: at.host, port: at.port }, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}
