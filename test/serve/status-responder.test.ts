import { connect, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import type { LineServer, LineServerOptions } from '../../src/io/line-server.js';
import { Backend } from '../../src/model/backend.js';
import { ModelEvents } from '../../src/model/events.js';
import { createStatusResponder } from '../../src/serve/status-responder.js';
import { MAX_CONTROL_PEERS } from '../../src/io/listen.js';
import { peerFlood } from '../helpers/peer-flood.js';
import { waitFor } from '../helpers/wait-for.js';

let responder: LineServer | null = null;
afterEach(async () => {
  await responder?.close();
  responder = null;
});

async function start(onReject?: LineServerOptions['onReject']): Promise<{ port: number; b: Backend }> {
  const cfg = loadConfigText(`status: { listen: "127.0.0.1:0" }\nbackends:\n  - name: licenses\n    servers: [{ name: a, address: "10.0.0.1:27000" }]\n`);
  const b = new Backend(cfg.backends[0]!, new ModelEvents());
  responder = createStatusResponder({ host: '127.0.0.1', port: 0 }, () => b, onReject);
  await responder.listen();
  return { port: (responder.address() as AddressInfo).port, b };
}

/** Sends `parts` (each after the previous one was flushed), resolves with everything read and how it ended. */
function exchange(port: number, parts: string[], opts: { end?: boolean } = {}): Promise<{ reply: string; how: string }> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port, noDelay: true });
    let reply = '';
    let how = 'close';
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => (reply += d));
    sock.on('end', () => (how = 'end'));
    sock.on('error', (e: NodeJS.ErrnoException) => (how = `error ${e.code}`));
    sock.on('close', () => resolve({ reply, how }));
    const send = (i: number): void => {
      if (i === parts.length) {
        if (opts.end) sock.end();
        return;
      }
      sock.write(parts[i]!, () => send(i + 1));
    };
    sock.on('connect', () => send(0));
  });
}

const RUNNING = 'Server Status: Running\r\nBackend: licenses\r\nTier: active\r\nServers: 1/1 up\r\n';

describe('STATUS responder (status.listen)', () => {
  it('answers STATUS\\r\\n and STATUS\\n with the four lines, then closes', async () => {
    const { port } = await start();
    expect(await exchange(port, ['STATUS\r\n'])).toEqual({ reply: RUNNING, how: 'end' });
    expect(await exchange(port, ['STATUS\n'])).toEqual({ reply: RUNNING, how: 'end' });
  });

  it('assembles a request split across segments', async () => {
    const { port } = await start();
    expect(await exchange(port, ['S', 'TA', 'TUS', '\r', '\n'])).toEqual({ reply: RUNNING, how: 'end' });
  });

  it('answers anything else with one ERROR line', async () => {
    const { port } = await start();
    expect((await exchange(port, ['HELLO\r\n'])).reply).toBe('ERROR expected "STATUS", got "HELLO"\r\n');
  });

  it('cuts off a peer that sends a line longer than 256 bytes, without answering', async () => {
    const why: string[] = [];
    const { port } = await start((w, peer) => why.push(`${w} from ${peer}`));
    const r = await exchange(port, ['X'.repeat(300)]);
    expect(r.reply).toBe('');
    expect(why).toEqual(['too-long from 127.0.0.1']);
  });

  it('reflects the backend state at the moment of the request', async () => {
    const { port, b } = await start();
    b.servers[0]!.checkFailed({ ok: false, reason: 'refused', durationMs: 1, at: 0 });
    expect((await exchange(port, ['STATUS\r\n'])).reply).toBe('Server Status: Down\r\nBackend: licenses\r\nTier: none\r\nServers: 0/1 up\r\n');
  });

  it('one host holding silent connections cannot take every slot: a STATUS check from another address is still answered', async () => {
    const { port } = await start();
    const flood = await peerFlood(port, MAX_CONTROL_PEERS);
    try {
      await waitFor(() => responder!.connections + flood.closed() === MAX_CONTROL_PEERS, { timeoutMs: 3000, what: 'every flooding connection accepted or cut off' });
      expect(await exchange(port, ['STATUS\r\n'])).toEqual({ reply: RUNNING, how: 'end' });
    } finally {
      flood.destroy();
    }
  });

  it('a peer that half-closes without a full line gets closed, with no reply', async () => {
    const { port } = await start();
    expect(await exchange(port, ['STAT'], { end: true })).toEqual({ reply: '', how: 'end' });
  });
});
