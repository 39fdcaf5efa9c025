#!/usr/bin/env node
// A relay in C on Node's own libuv loop (`--with-native`): bench/native-relay.c, compiled here into
// a Node-API addon and loaded into this Node process. It accepts, connects and relays as
// bench/handle-relay.mjs does, but with no JavaScript object or callback per socket event; it calls
// into JavaScript twice per session (the server's pick, the session's end), where a licgate with a
// native relay would keep its balancer and its session log. Here those two calls only count, so
// native/relay is what Node's JavaScript handle layer costs per connection, and native/haproxy what
// a native relay loop inside Node (a C++ addon in licgate's data plane) could reach.
//
// Usage: node bench/native-relay.mjs --config FILE [--no-js]   (the bench's generated YAML)
//        node bench/native-relay.mjs --build                     (compile only; exit 1 and cc's
//                                                                 message if that fails)
// Needs a C compiler (`cc`, or $CC) and the Node headers of this Node (include/node beside its
// binary, or /usr/include/node). The addon is cached in the temp directory by a hash of the source,
// the Node version and the headers used; a new build removes the cached builds of other hashes
// that are over an hour old (a younger one may belong to a run on another Node about to load it).
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const SOURCE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'native-relay.c');

function fail(message) {
  process.stderr.write(`native-relay: ${message}\n`);
  process.exit(1);
}

/** Compiles the addon if its cached build is missing; returns the .node file's path. */
function build() {
  const headers = [path.resolve(path.dirname(process.execPath), '..', 'include', 'node'), '/usr/include/node', '/usr/local/include/node']
    .find((dir) => fs.existsSync(path.join(dir, 'node_api.h')) && fs.existsSync(path.join(dir, 'uv.h')));
  if (!headers) fail(`no Node headers (node_api.h and uv.h) beside ${process.execPath} or in /usr/include/node`);
  const source = fs.readFileSync(SOURCE);
  const hash = crypto.createHash('sha256').update(source).update(process.version).update(headers).digest('hex').slice(0, 16);
  const cache = os.tmpdir();
  const out = path.join(cache, `licgate-bench-native-relay-${hash}.node`);
  if (fs.existsSync(out)) return out;
  // Built under a name of its own and renamed into place, so a concurrent build never loads half a file.
  const tmp = `${out}.${process.pid}`;
  const cc = process.env.CC || 'cc';
  const r = spawnSync(cc, ['-O2', '-shared', '-fPIC', '-I', headers, SOURCE, '-o', tmp], { encoding: 'utf8' });
  if (r.error) fail(`${cc}: ${r.error.code === 'ENOENT' ? 'not found (install a C compiler: gcc)' : r.error.message}`);
  if (r.status !== 0) fail(`${cc} failed:\n${r.stderr.trim()}`);
  fs.renameSync(tmp, out);
  const stale = Date.now() - 3600_000;
  for (const name of fs.readdirSync(cache)) {
    if (!/^licgate-bench-native-relay-[0-9a-f]{16}\.node$/.test(name)) continue;
    const file = path.join(cache, name);
    try {
      if (file !== out && fs.statSync(file).mtimeMs < stale) fs.unlinkSync(file);
    } catch {
      // Removed meanwhile by another run: nothing to do.
    }
  }
  return out;
}

const addon = build();
if (process.argv.includes('--build')) {
  process.stdout.write(`${addon}\n`);
  process.exit(0);
}

const { readFrontends } = await import('./proxy-config.mjs');
const { listen } = createRequire(import.meta.url)(addon);
const calls = !process.argv.includes('--no-js');
const sessions = { picked: 0, ended: 0, up: 0, down: 0 };
const pick = calls ? () => { sessions.picked++; } : undefined;
const ended = calls ? (up, down) => { sessions.ended++; sessions.up += up; sessions.down += down; } : undefined;
for (const fe of readFrontends('native-relay')) {
  try {
    listen(fe.host, fe.port, fe.to.host, fe.to.port, pick, ended);
  } catch (err) {
    fail(`${fe.name}: listen ${fe.host}:${fe.port} failed: ${err.code ?? err.message}`);
  }
}

// What the two calls saw, so a test can tell that they happen.
const report = () => (calls ? `native-relay: ${sessions.picked} sessions picked, ${sessions.ended} ended, ${sessions.up} bytes up, ${sessions.down} down\n` : '');
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { process.stdout.write(report(), () => process.exit(0)); });
