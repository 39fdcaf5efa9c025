#!/usr/bin/env node
// Bare Node `pipe()` TCP proxy: the floor any Node proxy on stream sockets starts from, and a
// stand-in for licgate when validating bench/run.mjs (`--licgate-cmd "node bench/pipe-proxy.mjs"`,
// or `--with-pipe`). No health checks, no retries, no logs.
//
// Usage: node bench/pipe-proxy.mjs [run] --config FILE   (the bench's generated YAML: proxy-config.mjs)
import net from 'node:net';
import { readFrontends } from './proxy-config.mjs';

for (const fe of readFrontends('pipe-proxy')) {
  const server = net.createServer({ noDelay: true }, (client) => {
    const upstream = net.connect({ host: fe.to.host, port: fe.to.port, noDelay: true });
    const kill = () => { client.destroy(); upstream.destroy(); };
    client.on('error', kill);
    upstream.on('error', kill);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  server.on('error', (err) => {
    process.stderr.write(`pipe-proxy: ${fe.name}: ${err.message}\n`);
    process.exit(1);
  });
  server.listen({ host: fe.host, port: fe.port, backlog: 4096 });
}

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
