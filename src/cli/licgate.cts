#!/usr/bin/env -S node --max-semi-space-size=1
// --max-semi-space-size=1 (MiB): V8 grows the young generation to 16 MiB per semi-space under load,
// and a proxy's short-lived per-session garbage then costs ~2 KB of RSS per held connection and
// multi-millisecond scavenges that show as p99 latency. `npm run bench` measures both ways
// (commit message of this line). systemd and the npm bin start licgate through this line.
//
// The entry is CommonJS so that it runs before libuv's thread pool starts: the pool reads
// UV_THREADPOOL_SIZE once, as it starts, and Node 20's ESM loader starts it (reading an ES module's
// file) before an ES entry's code runs; CommonJS loads synchronously on Node 20, 22 and 24. The
// daemon looks host names up on half the pool (address-resolver.ts's lookupsAtOnce), and with
// Node's default of 4 two silent license host names hold up every other lookup, so `licgate run`
// starts with 8 unless the environment sets a number of threads (libuv reads an empty or
// non-numeric value as 1). Other commands keep Node's default: `licgate check` runs every second.
if (process.argv[2] === 'run' && !(Number.parseInt(process.env.UV_THREADPOOL_SIZE ?? '', 10) > 0)) {
  process.env.UV_THREADPOOL_SIZE = '8';
}
void import('./main.js');
