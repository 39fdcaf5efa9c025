import type { LicenseInfo } from './license-info.js';

type Feature = LicenseInfo['features'][number];
/** `license`: positions of the columns that name one license (see LICENSE_COLUMNS). */
type Columns = { feature: number; count: number; inuse: number; license: number[] };
/** One feature's licenses, by license identity: each has its own Count and Inuse. */
type Pool = Map<string, { count: number; inuse: number }>;

// The columns before Count describe the license itself and repeat on each of its session rows; two
// licenses of one feature (a renewal enrolled before the old key expires, another customer ID or
// release) differ in at least one of them.
const LICENSE_COLUMNS = [
  'editor',
  'editorid',
  'feature',
  'model',
  'commercial type',
  'max release number',
  'max release date',
  'pricing structure',
  'max casual duration',
  'expiration date',
  'customer id',
];

// The admin tool's output ends up in /status and logs, so a misbehaving server must not bloat it.
const MAX_ERRORS = 20;
const MAX_ERROR_CHARS = 200;
// No real line is near this; skipping longer ones bounds the work on garbage.
const MAX_LINE_CHARS = 65_536;

// The admin tool's prompt is "admin >" (a space before the ">"), and -run echoes commands after it.
const CONNECT_COMMAND = /^(?:[^\s>]*\s?>\s*)?connect\s+([^\s:]+)/i;
const CONNECTED_TO = /^(?:[^\s>]*\s?>\s*)?Connected to\s+([^\s:,;()]+)/i;
const ERROR_TEXT = /not connected|cannot connect|\berror\b/i;
// connect prints the server's status block ("Software version: ...", "Ready: yes"). A server that is
// starting, or whose license keys expired, says anything but "yes" and grants nothing, even though
// getLicenseUsage still lists its licenses.
const READY = /^(?:[^\s>]*\s?>\s*)?Ready:\s*(\S+)/i;
// A cheap first look for the CSV header, whose columns are then found by name in any case
// (headerColumns): a tool that spells one "InUse" must not read as a server that never answered.
const HEADER_WORDS = [/feature/i, /count/i, /inuse/i];

/**
 * Reads the output of `echo -e "connect HOST 4084\ngetLicenseUsage -csv" | DSLicSrv -admin`:
 * banner and prompt lines, then a CSV whose header names the columns. The tool's exit code does
 * not tell a refused connection from success, so the CSV header is the proof the server answered.
 */
export function parseDslsUsage(text: string): LicenseInfo {
  return scan(text).info;
}

/**
 * Reads DSLicSrv output cut at read_limit: a busy server lists a row per session and can pass
 * 1 MiB at peak use, which must not mark it DOWN exactly then. The usage CSV comes after the
 * connect's status, so once its header has come the server has answered: the result is marked
 * `truncated` and has the licenses of the rows before the cut (each license's first row carries
 * its Count and Inuse; another license of the same feature may come after the cut). Null when the
 * cut fell before the header.
 */
export function parseCutDslsUsage(text: string): LicenseInfo | null {
  // The last line is whatever the cut left of it: a Count cut short would be a wrong number.
  const { info, csv } = scan(text.slice(0, text.lastIndexOf('\n') + 1));
  return csv ? { ...info, truncated: true, features_may_continue: true } : null;
}

function scan(text: string): { info: LicenseInfo; csv: boolean } {
  let connectHost: string | undefined;
  let connectedHost: string | undefined;
  const errors: string[] = [];
  const pools = new Map<string, Pool>();
  let columns: Columns | undefined;
  let notReady = false;

  for (const raw of text.split(/\r\n|\r|\n/)) {
    if (raw.length > MAX_LINE_CHARS) continue;
    const line = raw.trim();
    if (line === '') continue;

    if (columns) {
      addRow(pools, splitCsvLine(line), columns);
      continue;
    }

    let m: RegExpExecArray | null;
    if ((m = CONNECTED_TO.exec(line))) connectedHost = m[1];
    else if ((m = CONNECT_COMMAND.exec(line))) connectHost = m[1];
    else if ((m = READY.exec(line))) {
      if (m[1]!.toLowerCase() === 'yes') continue;
      notReady = true;
      // Recorded without the prompt, so the verdict can quote what the server said.
      const said = line.slice(line.search(/Ready:/i));
      if (errors.length < MAX_ERRORS) errors.push(said.length > MAX_ERROR_CHARS ? `${said.slice(0, MAX_ERROR_CHARS - 1)}…` : said);
      continue;
    } else if (HEADER_WORDS.every((w) => w.test(line))) {
      columns = headerColumns(splitCsvLine(line));
      if (columns) continue;
    }
    if (ERROR_TEXT.test(line) && errors.length < MAX_ERRORS) {
      errors.push(line.length > MAX_ERROR_CHARS ? `${line.slice(0, MAX_ERROR_CHARS - 1)}…` : line);
    }
  }

  const answered = columns !== undefined && !notReady;
  const host = connectedHost ?? connectHost;
  const servers: LicenseInfo['servers'] = answered
    ? [{ host: host ?? 'localhost', up: true, master: true }]
    : host !== undefined
      ? [{ host, up: false, master: false }]
      : [];
  return {
    info: {
      servers,
      vendors: [{ name: 'DSLS', up: answered }],
      features: [...pools].map(([name, pool]) => poolFeature(name, pool)),
      errors,
    },
    csv: columns !== undefined,
  };
}

/** The server's own "Ready: no" (or any answer but yes), as recorded in `errors`; undefined when it did not say so. */
export function dslsNotReady(info: LicenseInfo): string | undefined {
  return info.errors.find((e) => /^Ready:/i.test(e));
}

/** Column positions by name, since DSLS versions have added columns over time. */
function headerColumns(fields: string[]): Columns | undefined {
  const index = new Map(fields.map((f, i) => [f.trim().toLowerCase(), i] as const));
  const feature = index.get('feature');
  const count = index.get('count');
  const inuse = index.get('inuse');
  if (feature === undefined || count === undefined || inuse === undefined) return undefined;
  const license = LICENSE_COLUMNS.map((c) => index.get(c)).filter((i): i is number => i !== undefined);
  return { feature, count, inuse, license };
}

/**
 * One license may appear on several rows, one per user session, each repeating the license's
 * columns; the largest figure seen is the license's, so a license's rows are folded with max, never
 * summed. Different licenses of one feature are separate pools, summed in poolFeature.
 */
function addRow(pools: Map<string, Pool>, fields: string[], columns: Columns): void {
  const name = fields[columns.feature]?.trim();
  const count = wholeNumber(fields[columns.count]);
  // A line without a feature and a numeric Count is the tool talking (a prompt, a message), not a license.
  if (!name || count === null) return;
  const inuse = wholeNumber(fields[columns.inuse]) ?? 0;
  let pool = pools.get(name);
  if (!pool) {
    pool = new Map();
    pools.set(name, pool);
  }
  const key = columns.license.map((i) => fields[i]?.trim() ?? '').join('\u0000');
  const seen = pool.get(key);
  if (!seen) pool.set(key, { count, inuse });
  else {
    seen.count = Math.max(seen.count, count);
    seen.inuse = Math.max(seen.inuse, inuse);
  }
}

function poolFeature(name: string, pool: Pool): Feature {
  let issued = 0;
  let inUse = 0;
  for (const l of pool.values()) {
    issued += l.count;
    inUse += l.inuse;
  }
  return { name, issued, in_use: inUse };
}

function wholeNumber(field: string | undefined): number | null {
  const t = field?.trim() ?? '';
  return /^\d+$/.test(t) ? Number(t) : null;
}

/**
 * RFC 4180 fields within one line: a field that starts with a quote may hold commas, and `""` in it
 * is a literal quote. Slices rather than per-character appends, so garbage costs little.
 */
function splitCsvLine(line: string): string[] {
  if (!line.includes('"')) return line.split(',');
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    let value = '';
    if (line[i] === '"') {
      let from = i + 1;
      for (;;) {
        const q = line.indexOf('"', from);
        if (q < 0) {
          // Unterminated quote: keep the rest rather than lose the row.
          value += line.slice(from);
          i = line.length;
          break;
        }
        value += line.slice(from, q);
        if (line[q + 1] !== '"') {
          i = q + 1;
          break;
        }
        value += '"';
        from = q + 2;
      }
    }
    const comma = line.indexOf(',', i);
    if (comma < 0) {
      fields.push(value + line.slice(i));
      return fields;
    }
    fields.push(value + line.slice(i, comma));
    i = comma + 1;
  }
}
