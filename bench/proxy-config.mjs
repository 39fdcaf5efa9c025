// The frontends of the bench's generated licgate YAML, for the stand-in proxies (pipe-proxy.mjs,
// handle-relay.mjs). Regexes over the subset the bench writes (a validation aid, not a YAML
// parser): `- { name: X, listen: H:P, backend: B }` frontends and, per backend, the first
// `address: H:P`. The admin section is ignored. Exits 2 with a message on what it cannot use.
import fs from 'node:fs';

/** `--config FILE` from argv → [{ name, host, port, to: { host, port } }]. */
export function readFrontends(who) {
  const i = process.argv.indexOf('--config');
  if (i < 0 || !process.argv[i + 1]) die(`usage: ${who}.mjs --config FILE`);
  const text = fs.readFileSync(process.argv[i + 1], 'utf8');
  const backends = new Map();
  const section = text.slice(text.search(/^backends:/m));
  let current = null;
  for (const line of section.split('\n')) {
    const b = /^\s*-\s*name:\s*([\w-]+)\s*$/.exec(line);
    if (b) { current = b[1]; continue; }
    const a = /address:\s*([\d.]+):(\d+)/.exec(line);
    if (a && current && !backends.has(current)) backends.set(current, { host: a[1], port: Number(a[2]) });
  }
  const frontends = [];
  for (const m of text.matchAll(/name:\s*([\w-]+)\s*,\s*listen:\s*([\d.]+):(\d+)\s*,\s*backend:\s*([\w-]+)/g)) {
    const to = backends.get(m[4]);
    if (!to) die(`${who}: frontend ${m[1]}: unknown backend ${m[4]}`);
    frontends.push({ name: m[1], host: m[2], port: Number(m[3]), to });
  }
  if (frontends.length === 0) die(`${who}: no frontends found in config`);
  return frontends;
}

function die(message) {
  process.stderr.write(`${message}\n`);
  process.exit(2);
}
