/**
 * What a session held across reloads keeps alive, measured in a process of its own so that a forced
 * GC is real (run with --expose-gc). reload.test.ts runs it:
 *
 *   node --expose-gc reload-survivors.mjs DIST RELOADS [alternate]
 *
 * Starts a Daemon from DIST (the built licgate) with one frontend and a backend of two servers in
 * front of an echo server, opens one session, reloads RELOADS times (each reload builds a new
 * Model, Backend and Servers), and after a forced GC counts the Backend and Server objects of the
 * configs replaced since that session began that are still alive, other than the session's own;
 * then ends the session and counts again. `alternate`: the backend has one server, p in one config
 * and q in the next, each removed with a session open and added back a reload later; a second
 * session opened after the first reload holds q. Prints {"echoed": ..., "held": ..., "ended": ...} as
 * one line. Exit 1 on a missed deadline or a refused reload.
 */
import { once } from 'node:events';
import { connect, createServer } from 'node:net';
import { pino } from 'pino';

const [dist, reloadsArg] = process.argv.slice(2);
const reloads = Number(reloadsArg);
const alternate = process.argv[4] === 'alternate';
const deadline = setTimeout(() => fail('deadline of 20 s missed'), 20_000);
const { loadConfigText } = await import(`${dist}/config/load.js`);
const { Daemon } = await import(`${dist}/daemon.js`);

const echo = createServer((c) => {
  c.on('error', () => {});
  c.pipe(c);
});
echo.listen(0, '127.0.0.1');
await once(echo, 'listening');
const up = echo.address().port;

// A weight that changes at each reload: every one has something to apply.
const yaml = (i) => `log: { level: silent }
shutdown_delay: 0s
frontends:
  - { name: held, listen: 127.0.0.1:0, backend: survivors }
backends:
  - name: survivors
    check: { type: none }
    servers:
${alternate ? `      - { name: ${i % 2 ? 'q' : 'p'}, address: 127.0.0.1:${up} }` : `      - { name: a, address: 127.0.0.1:${up}, weight: ${1 + (i % 50)} }
      - { name: b, address: 127.0.0.1:${up} }`}
`;
let round = 0;
const d = new Daemon(loadConfigText(yaml(0), 'survivors.yaml'), pino({ level: 'silent' }), { reread: () => loadConfigText(yaml(round), 'survivors.yaml') });
await d.start();

const open = async () => {
  const s = connect(d.frontends[0].address().port, '127.0.0.1');
  s.on('error', (e) => fail(`session: ${e.message}`));
  await once(s, 'connect');
  await echoed(s, 'before\n');
  return s;
};
const echoed = async (s, text) => {
  s.write(text);
  let got = '';
  while (got.length < text.length) got += (await once(s, 'data'))[0];
  return got;
};
const sessions = [await open()];

/** Per reload, the backend and its servers of the config it put in place; [0] is the session's. */
const generations = [];
const note = () => {
  const b = d.model.backend('survivors');
  generations.push([b, ...b.servers].map((o) => new WeakRef(o)));
};
note();
for (round = 1; round <= reloads; round++) {
  const r = await d.reload('reload-survivors');
  if (!r.ok) fail(`reload ${round} refused: ${r.errors.join('; ')}`);
  note();
  if (alternate && round === 1) sessions.push(await open());
}
const after = await echoed(sessions[0], 'after\n');

async function collect() {
  for (let i = 0; i < 4; i++) {
    globalThis.gc();
    await new Promise((r) => setImmediate(r));
  }
}
/** Alive among the generations from `from` up to the running one (excluded). */
const alive = (from) => {
  let backends = 0;
  let servers = 0;
  for (const [b, ...ss] of generations.slice(from, -1)) {
    if (b.deref()) backends++;
    for (const s of ss) if (s.deref()) servers++;
  }
  return { backends, servers };
};

await collect();
// The first generations are what the sessions hold: their backends and servers are alive while they are open.
const held = alive(sessions.length);
for (const s of sessions) s.destroy();
for (const until = Date.now() + 5000; d.openSessions() > 0; ) {
  if (Date.now() > until) fail('the session did not end within 5 s');
  await new Promise((r) => setTimeout(r, 10));
}
await collect();
const ended = alive(0);
console.log(JSON.stringify({ echoed: after, held, ended }));
await d.close();
echo.close();
process.exit(0);

function fail(why) {
  process.stderr.write(`reload-survivors: ${why}\n`);
  process.exit(1);
}
