#!/usr/bin/env node
// Bare Node `pipe()` TCP proxy: the floor any Node proxy starts from, and a stand-in for licgate
// when validating bench/run.mjs (`--licgate-cmd "node bench/pipe-proxy.mjs"`, or `--with-pipe`).
//
// Usage: node bench/pipe-proxy.mjs [run] --config FILE
// Reads only the subset of the bench's generated YAML it needs, with regexes (validation aid, not
// a YAML parser): `- { name: X, listen: H:P, backend: B }` frontends and, per backend,
// the first `address: H:P`. The admin section is ignored. No health checks, no retries, no logs.
import fs from 'node:fs';
import net from 'node:net';

const i = process.argv.indexOf('--config');
if (i < 0 || !process.argv[i + 1]) {
  process.stderr.write('usage: pipe-proxy.mjs --config FILE\n');
  process.exit(2);
}
const text = fs.readFileSync(process.argv[i + 1], 'utf8');

const frontends = [];
for (const m of text.matchAll(/name:\s*([\w-]+)\s*,\s*listen:\s*([\d.]+):(\d+)\s*,\s*backend:\s*([\w-]+)/g)) {
  frontends.push({ name: m[1], host: m[2], port: Number(m[3]), backend: m[4] });
}
const backends = new Map();
const section = text.slice(text.search(/^backends:/m));
let current = null;
for (const line of section.split('\n')) {
  const b = /^\s*-\s*name:\s*([\w-]+)\s*$/.exec(line);
  if (b) { current = b[1]; continue; }
  const a = /address:\s*([\d.]+):(\d+)/.exec(line);
  if (a && current && !backends.has(current)) backends.set(current, { host: a[1], port: Number(a[2]) });
}
if (frontends.length === 0) {
  process.stderr.write('pipe-proxy: no frontends found in config\n');
  process.exit(2);
}

for (const fe of frontends) {
  const to = backends.get(fe.backend);
  if (!to) {
    process.stderr.write(`pipe-proxy: frontend ${fe.name}: unknown backend ${fe.backend}\n`);
    process.exit(2);
  }
  const server = net.createServer({ noDelay: true }, (client) => {
    const upstream = net.connect({ host: to.host, port: to.port, noDelay: true });
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
