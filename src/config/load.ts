import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument } from 'yaml';
import { ConfigError, ConfigIssue } from '../errors.js';
import { formatHostPort, isLoopback, type HostPort } from './address.js';
import { readConfig, type Config } from './schema.js';
import { YamlReader } from './yaml-reader.js';

/** Reads, validates and freezes a config file. Throws ConfigError listing every problem. */
export function loadConfigFile(file: string): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError([new ConfigIssue({ file, line: 1, col: 1 }, `cannot read config: ${(e as Error).message}`)]);
  }
  return loadConfigText(text, file);
}

export function loadConfigText(text: string, file = '<config>'): Config {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: false });
  const r = new YamlReader(file, lines, doc);
  for (const e of doc.errors) {
    const lp = e.linePos?.[0];
    r.issues.push(new ConfigIssue({ file, line: lp?.line ?? 1, col: lp?.col ?? 1 }, `YAML syntax: ${e.message.split('\n')[0]}`));
  }
  if (r.issues.length) throw new ConfigError(r.issues);
  const cfg = readConfig(r, doc.contents as never);
  if (cfg && r.issues.length === 0) crossCheck(r, cfg);
  if (r.issues.length || !cfg) throw new ConfigError(r.issues.length ? r.issues : [new ConfigIssue({ file, line: 1, col: 1 }, 'empty config')]);
  return deepFreeze(cfg);
}

/** Checks that need the whole file: unique names, references, listener clashes, admin exposure. */
function crossCheck(r: YamlReader, cfg: Config): void {
  const backends = new Map(cfg.backends.map((b) => [b.name, b]));
  unique(r, cfg.backends, 'backend');
  unique(r, cfg.frontends, 'frontend');
  for (const b of cfg.backends) {
    unique(r, b.servers, `server in backend "${b.name}"`);
    if (b.stick && b.balance === 'source') r.errorAt(b, 'stick', `backend "${b.name}": "stick: source" is redundant with "balance: source"; use one`);
  }
  const known = [...backends.keys()].join(', ') || 'none defined';
  for (const f of cfg.frontends) {
    if (!backends.has(f.backend)) r.errorAt(f, 'backend', `frontend "${f.name}": unknown backend "${f.backend}" (backends: ${known})`);
  }
  if (cfg.status?.backend && !backends.has(cfg.status.backend)) r.errorAt(cfg.status, 'backend', `status.backend: unknown backend "${cfg.status.backend}" (backends: ${known})`);
  if (cfg.status && !cfg.status.backend && cfg.backends.length === 0) r.errorAt(cfg.status, null, 'status: there is no backend to report on; add a backend');
  if (cfg.agent) {
    const b = backends.get(cfg.agent.backend);
    if (!b) r.errorAt(cfg.agent, 'backend', `agent.backend: unknown backend "${cfg.agent.backend}" (backends: ${known})`);
    else if (cfg.agent.server && !b.servers.some((s) => s.name === cfg.agent!.server)) r.errorAt(cfg.agent, 'server', `agent.server: backend "${b.name}" has no server "${cfg.agent.server}"`);
  }
  const listeners: [object, string, HostPort][] = [
    ...cfg.frontends.map((f) => [f, `frontend "${f.name}"`, f.listen] as [object, string, HostPort]),
    ...(cfg.status ? [[cfg.status, 'status', cfg.status.listen] as [object, string, HostPort]] : []),
    ...(cfg.agent ? [[cfg.agent, 'agent', cfg.agent.listen] as [object, string, HostPort]] : []),
    ...(cfg.admin ? [[cfg.admin, 'admin', cfg.admin.listen] as [object, string, HostPort]] : []),
  ];
  const seen = new Map<string, string>();
  for (const [obj, what, hp] of listeners) {
    if (hp.port === 0) continue;
    const key = formatHostPort(hp);
    const other = seen.get(key);
    if (other) r.errorAt(obj, 'listen', `${what}: listen address ${key} is already used by ${other}`);
    else seen.set(key, what);
  }
  if (cfg.admin && !isLoopback(cfg.admin.listen.host) && !cfg.admin.token_file) {
    r.errorAt(cfg.admin, 'listen', `admin.listen: ${formatHostPort(cfg.admin.listen)} is reachable from other hosts; set admin.token_file, or listen on 127.0.0.1`);
  }
  if (cfg.admin?.token_file) {
    try {
      if (readFileSync(cfg.admin.token_file, 'utf8').trim().length < 16) r.errorAt(cfg.admin, 'token_file', `admin.token_file: expected a token of at least 16 characters in ${cfg.admin.token_file}`);
    } catch (e) {
      r.errorAt(cfg.admin, 'token_file', `admin.token_file: cannot read ${cfg.admin.token_file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  if (!cfg.frontends.length && !cfg.status && !cfg.agent && !cfg.admin) {
    r.issues.push(new ConfigIssue({ file: r.file, line: 1, col: 1 }, 'nothing to run: declare frontends (proxy role), status/agent (sidecar role) or admin'));
  }
}

function unique(r: YamlReader, items: { name: string }[], what: string): void {
  const seen = new Set<string>();
  for (const it of items) {
    if (seen.has(it.name)) r.errorAt(it, 'name', `duplicate ${what} name "${it.name}"`);
    seen.add(it.name);
  }
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !(o instanceof RegExp) && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}
