import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { isScalar, LineCounter, parseAllDocuments, parseDocument, visit, type YAMLError } from 'yaml';
import { ConfigError, ConfigIssue } from '../errors.js';
import { formatHostPort, isLoopback, isWildcard, listenClash, type HostPort } from './address.js';
import { readTokenFile, tokenFileWarning } from './admin-token.js';
import { notRegularFile, READ_NO_WAIT } from '../io/regular-file.js';
import { readConfig, type Config } from './schema.js';
import { closest, YamlReader } from './yaml-reader.js';

/** Reads, validates and freezes a config file. Throws ConfigError listing every problem. */
export function loadConfigFile(file: string): Config {
  let bytes: Buffer | undefined;
  let other: string | null = null;
  try {
    // A reload reads the file synchronously: a FIFO would wait for a writer with every relay
    // stopped, a device (/dev/zero) would be read without end.
    const fd = openSync(file, READ_NO_WAIT);
    try {
      other = notRegularFile(fstatSync(fd));
      if (other === null) bytes = readFileSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    throw new ConfigError([new ConfigIssue({ file, line: 1, col: 1 }, `cannot read config: ${(e as Error).message}`)]);
  }
  if (bytes === undefined) throw new ConfigError([new ConfigIssue({ file, line: 1, col: 1 }, `cannot read config: expected a regular file, found ${other}`)]);
  return loadConfigText(utf8Text(bytes, file), file);
}

/**
 * The file as UTF-8 text. A file saved in another encoding (Windows editors: UTF-16, or Latin-1 for
 * a path with an accent) would otherwise load with its bytes replaced, an argv path quietly wrong.
 */
function utf8Text(bytes: Buffer, file: string): string {
  const bom = bytes.subarray(0, 2).toString('hex');
  if (bom === 'fffe' || bom === 'feff') {
    throw new ConfigError([new ConfigIssue({ file, line: 1, col: 1 }, `expected a UTF-8 file, found UTF-16 (byte order mark ${bom.toUpperCase()}); save it as UTF-8`)]);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    const lenient = bytes.toString('utf8');
    const at = lenient.indexOf('\uFFFD');
    const before = lenient.slice(0, at).split('\n');
    const byte = bytes[Buffer.byteLength(lenient.slice(0, at))]!;
    const where = { file, line: before.length, col: [...before[before.length - 1]!].length + 1 };
    throw new ConfigError([new ConfigIssue(where, `expected a UTF-8 file, found byte 0x${byte.toString(16).toUpperCase().padStart(2, '0')}, which is not UTF-8 here (Latin-1?); save it as UTF-8`)]);
  }
}

export function loadConfigText(text: string, file = '<config>'): Config {
  // A byte order mark is not part of line 1: yaml keeps it, and every column there would be one too high.
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: false, merge: true });
  const r = new YamlReader(file, text, lines, doc);
  // With prettyErrors off, yaml sets only the offset (e.pos), not linePos.
  for (const e of doc.errors) {
    if (e.code === 'MULTIPLE_DOCS' && onlyEmptyAfterFirst(text)) continue;
    r.issues.push(new ConfigIssue(r.at(e.pos[0]), yamlErrorText(e)));
  }
  // yaml reports an alias without its anchor only from toJS(), which the reader does not use: to the
  // reader it is empty, so a key silently took its default (a whole check) or failed at 1:1.
  visit(doc, {
    Alias(_, alias) {
      if (r.resolve(alias) !== undefined) return;
      r.issues.push(new ConfigIssue(r.at(alias.range?.[0] ?? 0), `YAML alias *${alias.source}: expected an anchor &${alias.source} before it in the file, found none`));
    },
  });
  if (r.issues.length) throw new ConfigError(r.issues);
  const cfg = readConfig(r, doc.contents as never);
  // Cross-checks run after read errors too, so one pass reports every problem in the file.
  if (cfg) crossCheck(r, cfg);
  if (r.issues.length || !cfg) throw new ConfigError(r.issues.length ? r.issues : [new ConfigIssue({ file, line: 1, col: 1 }, 'empty config')], r.warnings);
  return deepFreeze(cfg);
}

/**
 * Whether the documents after the first hold nothing: a file that ends with "---" (templates joined
 * by "---" often do) is one config, as `kubectl` and Ansible read it.
 */
function onlyEmptyAfterFirst(text: string): boolean {
  // yaml gives an empty document a null scalar as its contents.
  return parseAllDocuments(text).slice(1).every((d) => d.errors.length === 0 && (d.contents === null || (isScalar(d.contents) && d.contents.value === null)));
}

/** yaml's message, except where it speaks to a JavaScript caller instead of to the admin. */
function yamlErrorText(e: YAMLError): string {
  // yaml positions it at the second document's "---" (or its first line), and suggests an API call.
  if (e.code === 'MULTIPLE_DOCS') return 'YAML: expected one document, found a second one starting here ("---" separates documents); remove this "---", or put what follows in another file';
  return `YAML syntax: ${e.message.split('\n')[0]}`;
}

/** Checks that need the whole file: unique names, references, listener clashes, admin exposure. */
function crossCheck(r: YamlReader, cfg: Config): void {
  // The config may be partly read (items and fields that had errors are undefined): skip those,
  // and check references only when every backend's name is known, so no error cascades.
  const hadErrors = r.issues.length > 0;
  const frontends = cfg.frontends.filter(Boolean);
  const backendList = cfg.backends.filter(Boolean);
  const namesKnown = backendList.length === cfg.backends.length && backendList.every((b) => b.name !== undefined);
  const backends = new Map(backendList.map((b) => [b.name, b]));
  unique(r, backendList, 'duplicate backend name');
  unique(r, frontends, 'duplicate frontend name');
  for (const b of backendList) {
    unique(r, b.servers.filter(Boolean), `backend "${b.name}": duplicate server name`);
    if (b.stick && b.balance === 'source') r.errorAt(b, 'stick', `backend "${b.name}": "stick: source" is redundant with "balance: source"; use one`);
    if (b.agent_port != null && b.check?.type === 'agent') r.errorAt(b, 'agent_port', `backend "${b.name}": agent_port adds an agent check, but the check is already type agent; use one`);
    if (b.agent_send && b.agent_port == null) r.errorAt(b, 'agent_send', `backend "${b.name}": agent_send is sent to the agent on agent_port, but agent_port is not set (a check of type agent takes "send")`);
  }
  const known = [...backends.keys()].join(', ') || 'none defined';
  const unknownBackend = (name: string): string => {
    const hint = closest(name, [...backends.keys()]);
    return `unknown backend "${name}"${hint ? ` (did you mean "${hint}"?)` : ''}; backends: ${known}`;
  };
  for (const f of frontends) {
    if (namesKnown && f.backend !== undefined && !backends.has(f.backend)) r.errorAt(f, 'backend', `frontend "${f.name}": ${unknownBackend(f.backend)}`);
  }
  // A FlexLM checkout is two connections, lmgrd then the vendor daemon (server_port), and only the
  // server that answered the first accepts the second: with neither stickiness nor a source hash
  // 44-53 % of checkouts were denied (flexlm-stickiness.test.ts). Valid still: RLM's ISV servers,
  // say, may not need it.
  for (const f of frontends) {
    const b = f.server_port != null && f.backend !== undefined ? backends.get(f.backend) : undefined;
    if (b && !b.stick && b.balance !== 'source' && b.servers.filter(Boolean).length > 1) {
      r.warnAt(f, 'server_port', `frontend "${f.name}": server_port makes this the second connection of a checkout (the vendor daemon), but backend "${b.name}" has neither "stick: source" nor "balance: source", so a client's two connections can reach two servers and the second server's vendor daemon denies the checkout; add "stick: source" to the backend`);
    }
  }
  if (namesKnown && cfg.status?.backend && !backends.has(cfg.status.backend)) r.errorAt(cfg.status, 'backend', `status.backend: ${unknownBackend(cfg.status.backend)}`);
  if (cfg.status && !cfg.status.backend && cfg.backends.length === 0) r.errorAt(cfg.status, null, 'status: there is no backend to report on; add a backend');
  if (namesKnown && cfg.agent?.backend !== undefined) {
    const b = backends.get(cfg.agent.backend);
    if (!b) r.errorAt(cfg.agent, 'backend', `agent.backend: ${unknownBackend(cfg.agent.backend)}`);
    else if (cfg.agent.server && !b.servers.some((s) => s?.name === cfg.agent!.server)) r.errorAt(cfg.agent, 'server', `agent.server: backend "${b.name}" has no server "${cfg.agent.server}"`);
    else if (cfg.agent.weight_from && b.check && !b.check.parse) r.errorAt(cfg.agent, 'weight_from', `agent.weight_from: backend "${b.name}" has check type ${b.check.type}, which reads no license usage; weight_from needs a check with "parse: lmstat" or "parse: dsls"`);
  }
  // HAProxy warns of a backend no frontend uses. It is still checked: an admin-only config monitors
  // its backends through /status and /metrics, so only a config with a listener that routes or
  // reports by backend warns, and only of those it never names.
  // A reference in error (unknown, or not read) is reported already, with the backend it likely
  // meant: that backend is not also "unused".
  const refs = [...cfg.frontends.map((f) => f?.backend), ...(cfg.status ? [cfg.status.backend ?? backendList[0]?.name] : []), ...(cfg.agent ? [cfg.agent.backend] : [])];
  if (namesKnown && refs.length && refs.every((n) => n !== undefined && backends.has(n))) {
    const used = new Set(refs);
    for (const b of backendList) {
      if (!used.has(b.name)) r.warnAt(b, 'name', `backend "${b.name}": no frontend, status or agent uses it, yet its servers are checked and its "no usable server" is logged and notified; name it in a frontend's "backend" or remove it`);
    }
  }
  const listeners: [object, string, HostPort | undefined][] = [
    ...frontends.map((f) => [f, `frontend "${f.name}"`, f.listen] as [object, string, HostPort]),
    ...(cfg.status ? [[cfg.status, 'status', cfg.status.listen] as [object, string, HostPort]] : []),
    ...(cfg.agent ? [[cfg.agent, 'agent', cfg.agent.listen] as [object, string, HostPort]] : []),
    ...(cfg.admin ? [[cfg.admin, 'admin', cfg.admin.listen] as [object, string, HostPort]] : []),
    ...(cfg.peers ? [[cfg.peers, 'peers', cfg.peers.listen] as [object, string, HostPort]] : []),
  ];
  const bound: [string, HostPort][] = [];
  for (const [obj, what, hp] of listeners) {
    if (!hp || hp.port === 0) continue;
    const key = formatHostPort(hp);
    const clash = bound.map(([other, at]) => [other, at, listenClash(hp, at)] as const).find(([, , why]) => why !== null);
    if (!clash) bound.push([what, hp]);
    else if (clash[2] === 'the same address') r.errorAt(obj, 'listen', `${what}: listen address ${key} is already used by ${clash[0]}`);
    else r.errorAt(obj, 'listen', `${what}: listen address ${key} overlaps ${formatHostPort(clash[1])} of ${clash[0]} (${clash[2]}); one of them is enough`);
  }
  if (cfg.admin?.listen && !isLoopback(cfg.admin.listen.host) && !cfg.admin.token_file) {
    r.errorAt(cfg.admin, 'listen', `admin.listen: ${formatHostPort(cfg.admin.listen)} is reachable from other hosts; set admin.token_file, or listen on 127.0.0.1`);
  }
  if (cfg.admin?.token_file) {
    const t = readTokenFile(cfg.admin.token_file);
    if ('problem' in t) r.errorAt(cfg.admin, 'token_file', t.problem);
    else {
      const readable = tokenFileWarning(cfg.admin.token_file);
      if (readable !== null) r.warnAt(cfg.admin, 'token_file', readable);
    }
  }
  if (cfg.peers?.token_file) {
    const t = readTokenFile(cfg.peers.token_file, 'peers.token_file');
    if ('problem' in t) r.errorAt(cfg.peers, 'token_file', t.problem);
    else {
      const readable = tokenFileWarning(cfg.peers.token_file, 'peers.token_file');
      if (readable !== null) r.warnAt(cfg.peers, 'token_file', readable);
    }
  }
  const peersHost = cfg.peers?.listen?.host;
  if (cfg.peers && peersHost !== undefined && isWildcard(peersHost)) {
    // The pushers connect from listen's address so that the other host's remotes admit them.
    r.warnAt(cfg.peers, 'listen', `peers.listen: ${peersHost} names no address to connect from: the kernel picks this host's source address towards each remote (on the VIP holder it can be the VIP), and the other host resets it unless its remotes list that address; set this host's own address`);
  }
  if (cfg.peers && namesKnown && !backendList.some((b) => b.stick)) {
    r.warnAt(cfg.peers, null, 'peers: no backend has "stick: source", so there is no table to share; add it to the backends FlexLM clients use, or remove peers');
  }
  if (!hadErrors && !cfg.frontends.length && !cfg.status && !cfg.agent && !cfg.admin) {
    r.issues.push(new ConfigIssue({ file: r.file, line: 1, col: 1 }, 'nothing to run: declare frontends (proxy role), status/agent (sidecar role) or admin'));
  }
}

function unique(r: YamlReader, items: { name: string }[], message: string): void {
  const seen = new Set<string>();
  for (const it of items) {
    if (it.name === undefined) continue;
    if (seen.has(it.name)) r.errorAt(it, 'name', `${message} "${it.name}"`);
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
