import { isAlias, isCollection, isMap, isScalar, isSeq, LineCounter, Scalar, visit, type Alias, type Document, type Node, type Pair, type YAMLMap } from 'yaml';
import { ConfigIssue, type SourcePosition } from '../errors.js';
import { formatDuration, parseDuration } from './duration.js';
import { parseHostPort, type HostPort } from './address.js';

// RFC 9110 section 5.6.2: a header name is a token.
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * The longest wait Node's timers take (about 24.8 days, HAProxy's limit on a timeout too): a longer
 * one runs after 1 ms, so `shutdown_grace: 30d` cut every session at once. A duration that is
 * swept, not timed, may be longer (stick_ttl, idle_timeout).
 */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Typed reads of YAML nodes that keep going after a problem: each reader records a positioned
 * ConfigIssue and returns undefined, so one pass over the file reports every error.
 */
export class YamlReader {
  readonly issues: ConfigIssue[] = [];
  /** Problems that do not stop licgate: validate prints them, start-up and reloads log them. */
  readonly warnings: ConfigIssue[] = [];
  private readonly marks = new WeakMap<object, { node: Node | null; keys: Map<string, Node | null> }>();
  /** For a map() result, the "<<" that brought in each merged key (see errorAt). */
  private readonly mergedAt = new WeakMap<Map<string, Node | null>, Map<string, Node>>();
  /** The nodes warned about, by topic: see warn. */
  private readonly warned = new WeakMap<object, Set<string>>();
  /** Each alias's anchored node (undefined: no anchor before it): see anchorsOf. */
  private readonly anchored: Map<Alias, Node | undefined>;

  constructor(readonly file: string, private readonly text: string, private readonly lines: LineCounter, readonly doc: Document) {
    this.anchored = anchorsOf(doc);
  }

  pos(node: Node | Pair | null | undefined): SourcePosition {
    const range = node && 'range' in node ? node.range : node && 'key' in node ? (node.key as Node | null)?.range : undefined;
    return range ? this.at(range[0]) : { file: this.file, line: 1, col: 1 };
  }

  /** The position of a source offset. yaml counts columns in UTF-16 units, an editor in characters: an emoji earlier on the line would put the column one too far. */
  at(offset: number): SourcePosition {
    const { line } = this.lines.linePos(offset);
    const start = this.lines.lineStarts[line - 1] ?? 0;
    return { file: this.file, line, col: [...this.text.slice(start, offset)].length + 1 };
  }

  error(node: Node | Pair | null | undefined, message: string): undefined {
    this.issues.push(new ConfigIssue(this.pos(node), message));
    return undefined;
  }

  /**
   * Once per place in the file: a node shared through an anchor (an alias, a `<<` merge) is read
   * once per use, and twenty backends merging one `connect_timeout: 3000` need one fix, not twenty
   * identical lines in validate's output, at every start and in every reload's log line. Once per
   * topic: `idle_timeout: 60000` lacks a unit and, read so, is also short enough to cut sessions.
   */
  warn(node: Node | Pair | null | undefined, message: string, topic = 'value'): void {
    if (node) {
      const topics = this.warned.get(node) ?? new Set<string>();
      if (topics.has(topic)) return;
      this.warned.set(node, topics.add(topic));
    }
    this.warnings.push(new ConfigIssue(this.pos(node), message));
  }

  /** Remembers where an object's keys came from, for checks that run after reading (names, references). */
  mark<T extends object>(obj: T, keys: Map<string, Node | null>, node: Node | null): T {
    this.marks.set(obj, { node, keys });
    return obj;
  }

  errorAt(obj: object, key: string | null, message: string): void {
    this.error(this.nodeOf(obj, key), message);
  }

  warnAt(obj: object, key: string | null, message: string): void {
    this.warn(this.nodeOf(obj, key), message);
  }

  private nodeOf(obj: object, key: string | null): Node | null {
    const m = this.marks.get(obj);
    // These checks judge a value where it is used: a merged one is at fault in the mapping that
    // merged it (a second server taking the first's name), not at its anchor, shared by every use.
    const at = key !== null && m ? (this.mergedAt.get(m.keys)?.get(key) ?? m.keys.get(key)) : undefined;
    return at ?? m?.node ?? null;
  }

  deref(node: unknown): Node | null {
    if (node == null) return null;
    if (isAlias(node)) return this.resolve(node) ?? null;
    return node as Node;
  }

  /** The node an alias stands for: the last one anchored with its name before it, as yaml's Alias.resolve finds it. */
  resolve(alias: Alias): Node | undefined {
    return this.anchored.get(alias);
  }

  /**
   * A pair's value; a key written with none (`{ listen }`, `? listen`) has nothing at the key, so
   * that an error about it points there, not at 1:1.
   */
  private valueOf(pair: Pair): Node | null {
    if (pair.value != null) return this.deref(pair.value);
    const nothing = new Scalar(null);
    nothing.range = (pair.key as Node | null)?.range ?? null;
    return nothing;
  }

  /** Map entries keyed by string; unknown keys are reported with the closest known key. */
  map(node: Node | null, what: string, known: readonly string[]): Map<string, Node | null> | undefined {
    node = this.deref(node);
    if (!isMap(node)) return this.error(node, `${what}: expected a mapping (key: value), found ${describe(node)}`);
    const out = new Map<string, Node | null>();
    const mergedAt = new Map<string, Node>();
    this.mergedAt.set(out, mergedAt);
    for (const [pair, merged] of this.mergedPairs(node, what, new Set())) {
      const key = isScalar(pair.key) ? String(pair.key.value) : undefined;
      if (key === undefined) {
        this.error(pair as Pair, `${what}: expected a plain key`);
        continue;
      }
      if (!known.includes(key)) {
        const hint = closest(key, known);
        this.error(pair.key as Node, `${what}: unknown key "${key}"${hint ? ` (did you mean "${hint}"?)` : ''}; expected one of ${known.join(', ')}`);
        continue;
      }
      if (out.has(key)) {
        if (!merged) this.error(pair.key as Node, `${what}: duplicate key "${key}"`);
        continue;
      }
      out.set(key, this.valueOf(pair));
      if (merged) mergedAt.set(key, merged);
    }
    return out;
  }

  /**
   * A mapping's pairs with YAML merge keys (`<<: *defaults`, `<<: [*a, *b]`) replaced by the pairs
   * they bring in, after the mapping's own: the first of a key wins, so the mapping's own keys
   * override merged ones, and an earlier merged mapping a later one, as the merge key type says.
   * Merged pairs keep their nodes, so an error in one points where it is written; each comes with
   * the `<<` key of `node` that brought it in (null for its own).
   */
  private mergedPairs(node: YAMLMap, what: string, seen: Set<YAMLMap>): [Pair, mergedAt: Node | null][] {
    seen.add(node);
    const own: [Pair, Node | null][] = [];
    const merged: [Pair, Node | null][] = [];
    for (const pair of node.items) {
      // Parsed with `merge: true`, yaml gives a plain `<<` key a symbol value; a quoted "<<" stays a string.
      if (!isScalar(pair.key) || typeof pair.key.value !== 'symbol') {
        own.push([pair, null]);
        continue;
      }
      const value = this.deref(pair.value);
      const sources = isSeq(value) ? value.items.map((n) => this.deref(n)) : [value];
      for (const src of sources) {
        if (!isMap(src)) {
          this.error(src ?? (pair.key as Node), `${what}: YAML merge key "<<": expected a mapping, an alias of one (<<: *name) or a list of them, found ${describe(src)}`);
          continue;
        }
        if (!seen.has(src)) merged.push(...this.mergedPairs(src, what, seen).map(([p]): [Pair, Node] => [p, pair.key as Node]));
      }
    }
    return [...own, ...merged];
  }

  /**
   * An optional section: written with nothing under it (`admin:` whose only key is commented out,
   * or `admin: null`) it means what `admin: {}` means, its defaults; a required key is then
   * reported as missing, by name.
   */
  section(node: Node | null, what: string, known: readonly string[]): Map<string, Node | null> | undefined {
    return isNothing(this.deref(node)) ? new Map() : this.map(node, what, known);
  }

  /** An optional list written with nothing under it: empty, as a section is (see section()). */
  list(node: Node | null, what: string): (Node | null)[] | undefined {
    return isNothing(this.deref(node)) ? [] : this.seq(node, what);
  }

  seq(node: Node | null, what: string): (Node | null)[] | undefined {
    node = this.deref(node);
    if (!isSeq(node)) return this.error(node, `${what}: expected a list, found ${describe(node)}`);
    return node.items.map((n) => this.deref(n));
  }

  scalar(node: Node | null): unknown {
    return isScalar(node) ? node.value : undefined;
  }

  string(node: Node | null, what: string, opts: { pattern?: RegExp; patternText?: string } = {}): string | undefined {
    const v = this.scalar(node);
    if (typeof v !== 'string' || v === '') return this.error(node, `${what}: expected a non-empty string, found ${describe(node)}`);
    if (opts.pattern && !opts.pattern.test(v)) return this.error(node, `${what}: expected ${opts.patternText}, found "${v}"`);
    return v;
  }

  int(node: Node | null, what: string, min: number, max: number): number | undefined {
    const v = this.scalar(node);
    if (typeof v !== 'number' || !Number.isInteger(v)) return this.error(node, `${what}: expected a whole number ${min}-${max}, found ${describe(node)}`);
    if (v < min || v > max) return this.error(node, `${what}: expected a whole number ${min}-${max}, found ${v}`);
    return v;
  }

  bool(node: Node | null, what: string): boolean | undefined {
    const v = this.scalar(node);
    if (typeof v !== 'boolean') return this.error(node, `${what}: expected true or false, found ${describe(node)}`);
    return v;
  }

  /**
   * A number without a unit is milliseconds (the design's contract), which an admin used to
   * HAProxy's or FlexLM's seconds does not expect: `idle_timeout: 1800` is 1.8 s. So such a number
   * other than 0 gets a warning, and a range error says how it was read.
   */
  duration(node: Node | null, what: string, min = 0, max = MAX_TIMER_MS): number | undefined {
    const raw = this.scalar(node);
    const ms = parseDuration(raw);
    if (ms === null) return this.error(node, `${what}: expected a duration like 500ms, 2s, 5m or 8h, found ${describe(node)}`);
    const written = String(raw).trim();
    const unitless = /^[\d.]+$/.test(written);
    if (ms < min || ms > max) {
      const found = unitless ? `${written} (a number without a unit is milliseconds; ${written}s is seconds)` : `${ms}ms`;
      return this.error(node, `${what}: expected a duration between ${min}ms and ${max}ms, found ${found}`);
    }
    // Not ms !== 0: a fraction is rounded to whole milliseconds, and 0.4 read as 0 turns a timeout off.
    if (unitless && Number(written) !== 0) this.warn(node, `${what}: ${written} has no unit, so it is read as ${ms}ms; write ${formatDuration(ms)} to keep that, or ${written}s for seconds`, 'unit');
    return ms;
  }

  oneOf<T extends string>(node: Node | null, what: string, values: readonly T[]): T | undefined {
    const v = this.scalar(node);
    if (typeof v === 'string' && (values as readonly string[]).includes(v)) return v as T;
    const hint = typeof v === 'string' ? closest(v, values) : undefined;
    return this.error(node, `${what}: expected one of ${values.join(' | ')}, found ${describe(node)}${hint ? ` (did you mean "${hint}"?)` : ''}`);
  }

  hostPort(node: Node | null, what: string, opts: { allowPortZero?: boolean } = {}): HostPort | undefined {
    const v = this.scalar(node);
    if (typeof v !== 'string') return this.error(node, `${what}: expected host:port, found ${describe(node)}`);
    const hp = parseHostPort(v, opts);
    return typeof hp === 'string' ? this.error(node, `${what}: ${hp}`) : hp;
  }

  regex(node: Node | null, what: string): RegExp | undefined {
    const v = this.string(node, what);
    if (v === undefined) return undefined;
    try {
      return new RegExp(v);
    } catch (e) {
      return this.error(node, `${what}: expected a regular expression, found "${v}" (${(e as Error).message})`);
    }
  }

  /**
   * HTTP header names to values. Names are checked here, not at the first send: undici refuses a
   * name with a space or a value with a line end on every delivery, and two names differing only in
   * case would both be sent, the receiver reading one of them.
   */
  httpHeaders(node: Node | null, what: string): Record<string, string> | undefined {
    node = this.deref(node);
    if (!isMap(node)) return this.error(node, `${what}: expected a mapping of header names to strings, found ${describe(node)}`);
    const out: Record<string, string> = {};
    const seen = new Set<string>();
    for (const [pair, merged] of this.mergedPairs(node, what, new Set())) {
      const key = pair.key as Node | null;
      const k = isScalar(key) ? String(key.value) : undefined;
      if (k === undefined || !HEADER_NAME.test(k)) {
        this.error(key ?? (pair as Pair), `${what}: expected a header name (letters, digits and !#$%&'*+-.^_\`|~), found ${k === undefined ? describe(key) : `"${k}"`}`);
        continue;
      }
      if (seen.has(k.toLowerCase())) {
        if (merged) continue;
        this.error(key, `${what}: duplicate header "${k}" (header names are not case-sensitive)`);
        continue;
      }
      seen.add(k.toLowerCase());
      const value = this.valueOf(pair);
      const raw = this.scalar(value);
      if (typeof raw === 'number' || typeof raw === 'boolean' || typeof raw === 'bigint') {
        // Not quoted: an unquoted API key of digits is a number to YAML, and this goes to the log.
        this.error(pair.value as Node, `${what}.${k}: expected a string, found a ${typeof raw === 'boolean' ? 'boolean' : 'number'} (not shown: a header value is often a secret); put the value in quotes`);
        continue;
      }
      const v = this.string(value, `${what}.${k}`);
      if (v === undefined) continue;
      if (/[\0-\x08\x0a-\x1f\x7f]/.test(v)) {
        this.error(pair.value as Node, `${what}.${k}: expected a header value on one line without control characters, found one at character ${v.search(/[\0-\x08\x0a-\x1f\x7f]/) + 1}`);
        continue;
      }
      out[k] = v;
    }
    return out;
  }

  /**
   * Environment variables for a command: names as a shell takes them, values strings or whole
   * numbers (FLEXLM_TIMEOUT: 1000000). LANG and LC_ALL are refused: the license tools' text is
   * parsed in the C locale.
   */
  environment(node: Node | null, what: string): Record<string, string> | undefined {
    node = this.deref(node);
    if (!isMap(node)) return this.error(node, `${what}: expected a mapping of variable names to values, like { LM_LICENSE_FILE: 27000@lic1 }, found ${describe(node)}`);
    const out: Record<string, string> = {};
    const seen = new Set<string>();
    for (const [pair, merged] of this.mergedPairs(node, what, new Set())) {
      const key = pair.key as Node | null;
      const k = isScalar(key) ? String(key.value) : undefined;
      if (k !== undefined && seen.has(k)) {
        // A merged one the mapping's own overrode; written twice in the mapping, one value was dropped unseen.
        if (!merged) this.error(key, `${what}: duplicate key "${k}"`);
        continue;
      }
      if (k !== undefined) seen.add(k);
      if (k === undefined || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) {
        this.error(key ?? (pair as Pair), `${what}: expected a variable name (letters, digits and _, not starting with a digit), found ${k === undefined ? describe(key) : `"${k}"`}`);
        continue;
      }
      if (k === 'LANG' || k === 'LC_ALL') {
        this.error(key, `${what}.${k}: licgate runs checks with LANG and LC_ALL set to C, as its parsers read the tools' C-locale text; remove it`);
        continue;
      }
      const value = this.valueOf(pair);
      const raw = this.scalar(value);
      const v = typeof raw === 'number' && Number.isSafeInteger(raw) ? String(raw) : this.string(value, `${what}.${k}`);
      if (v === undefined) continue;
      if (v.includes('\0')) {
        this.error(pair.value as Node, `${what}.${k}: expected a value without a NUL character, found one at character ${v.indexOf('\0') + 1}`);
        continue;
      }
      out[k] = v;
    }
    return out;
  }

  stringList(node: Node | null, what: string): string[] | undefined {
    const items = this.seq(node, what);
    if (!items) return undefined;
    const out = items.map((n, i) => this.string(n, `${what}[${i}]`));
    return out.every((s) => s !== undefined) ? (out as string[]) : undefined;
  }
}

/**
 * What each alias of `doc` stands for, in one walk. yaml's Alias.resolve(doc) walks the whole
 * document at every call, so a file of N aliases took N walks: one of 20,000 (120 KB) loaded in
 * over two minutes, a reload holding every relay that long.
 */
function anchorsOf(doc: Document): Map<Alias, Node | undefined> {
  const out = new Map<Alias, Node | undefined>();
  const last = new Map<string, Node>();
  visit(doc, {
    Node(_key, node) {
      if (isAlias(node)) out.set(node, last.get(node.source));
      else if ((isScalar(node) || isCollection(node)) && node.anchor) last.set(node.anchor, node);
    },
  });
  return out;
}

function isNothing(node: Node | null): boolean {
  return node === null || (isScalar(node) && node.value === null);
}

export function describe(node: Node | null | undefined): string {
  if (node == null) return 'nothing';
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) {
    const v = node.value;
    if (v === null) return 'nothing';
    if (typeof v === 'string') return `"${v.length > 40 ? v.slice(0, 40) + '…' : v}"`;
    return `${typeof v} ${String(v)}`;
  }
  return 'an unsupported YAML node';
}

/** The known word within edit distance 2 (or a third of its length) of `word`, for "did you mean". */
export function closest(word: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDist = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const k of known) {
    const d = editDistance(word.toLowerCase(), k.toLowerCase());
    if (d < bestDist) {
      best = k;
      bestDist = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}
