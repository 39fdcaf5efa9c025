import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { Model } from '../../src/model/model.js';
import { AdminStateWriter, adminStateOf, parseAdminState, restoreAdminState, stickSourceOf, type SavedServer } from '../../src/serve/admin-state-file.js';
import { waitFor } from '../helpers/wait-for.js';

let dir: string;
let writer: AdminStateWriter | null = null;
afterEach(async () => {
  await writer?.flush();
  writer = null;
  rmSync(dir, { recursive: true, force: true });
});

/** A writer for `file` whose log lines are collected; `state` is what an admin set, changed by the test. */
function startWriter(file: string, state: SavedServer[], retryMs: number): { lines: () => { level: number; msg: string }[] } {
  let text = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  writer = new AdminStateWriter(file, () => ({ servers: state, backends: [] }), pino({ level: 'info' }, sink), retryMs);
  return { lines: () => text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { level: number; msg: string }) };
}

describe('AdminStateWriter', () => {
  it('a directory removed while it runs fails the write after a change, logged; once the directory is back, the retry writes the state', async () => {
    dir = mkdtempSync(join(tmpdir(), 'licgate-state-writer-'));
    const sub = join(dir, 'state');
    const file = join(sub, 'server-state');
    mkdirSync(sub);
    const state: SavedServer[] = [];
    const { lines } = startWriter(file, state, 300);
    // Root ignores a chmod: a directory that is gone fails the write for root too.
    rmSync(sub, { recursive: true });
    state.push({ backend: 'lic', server: 'a', address: '127.0.0.1:27000', admin: 'maint' });
    writer!.changed();
    await waitFor(() => lines().length === 1, { timeoutMs: 5000, what: 'the failed write logged' });
    expect(lines().map((l) => [l.level, l.msg])).toEqual([[50, `cannot write admin state file ${file} (ENOENT): what an admin set holds while licgate runs, but a restart now would start every server ready; trying again`]]);
    mkdirSync(sub);
    await waitFor(() => existsSync(file), { timeoutMs: 5000, what: 'the state file written once the directory is back' });
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ version: 1, servers: [{ backend: 'lic', server: 'a', address: '127.0.0.1:27000', admin: 'maint' }] });
    await waitFor(() => lines().length === 2, { timeoutMs: 5000, what: '"written again" logged' });
    // One failure, or more when a retry came before the directory was back.
    expect(lines()[1]).toMatchObject({ level: 30, msg: expect.stringMatching(new RegExp(`^admin state file ${file} written again after \\d+ failed write\\(s\\)$`)) });
  });
});

describe('AdminStateWriter with a stick table', () => {
  it('writes a new or moved client at its next look, and entries only refreshed not before stickRefreshMs after the last write', async () => {
    dir = mkdtempSync(join(tmpdir(), 'licgate-state-writer-'));
    const file = join(dir, 'server-state');
    const model = new Model(loadConfigText('admin: { listen: 127.0.0.1:0 }\nbackends:\n  - name: lic\n    stick: source\n    servers:\n      - { name: a, address: 127.0.0.1:1 }\n      - { name: b, address: 127.0.0.1:2 }\n'));
    const table = model.backend('lic')!.stick!;
    const REFRESH_MS = 1500;
    writer = new AdminStateWriter(file, () => adminStateOf(model), pino({ level: 'silent' }), undefined, stickSourceOf(() => model), 20, REFRESH_MS);
    type Doc = { saved_at: string; stick?: { entries: [string, string, number, number][] }[] };
    const read = (): Doc | null => (existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Doc) : null);
    /** The next write after `last` (saved_at differs), and when it was seen. */
    const nextWrite = async (last: string | null, what: string): Promise<{ doc: Doc; at: number }> => {
      const doc = await waitFor(() => { const d = read(); return d !== null && d.saved_at !== last && d; }, { timeoutMs: 5000, intervalMs: 5, what });
      return { doc, at: performance.now() };
    };

    table.set('10.0.0.1', 'a');
    const first = await nextWrite(null, 'the new client written');
    expect(first.doc.stick?.[0]?.entries.map((e) => e.slice(0, 2))).toEqual([['10.0.0.1', 'a']]);
    table.set('10.0.0.1', 'a');
    const refreshed = await nextWrite(first.doc.saved_at, 'the refresh written');
    // The first write began before it was seen, by at most the poll and the write itself.
    expect(refreshed.at - first.at).toBeGreaterThanOrEqual(REFRESH_MS - 300);
    expect(refreshed.doc.stick![0]!.entries[0]![2]).toBeGreaterThan(first.doc.stick![0]!.entries[0]![2]);
    const movedAt = performance.now();
    table.set('10.0.0.1', 'b');
    const moved = await nextWrite(refreshed.doc.saved_at, 'the moved client written');
    expect(moved.doc.stick?.[0]?.entries.map((e) => e.slice(0, 2))).toEqual([['10.0.0.1', 'b']]);
    expect(moved.at - movedAt).toBeLessThan(REFRESH_MS - 300);
  });
});

describe('AdminStateWriter at the stop', () => {
  it('a write that fails at the stop counts the failures the failure-log interval kept quiet before it', async () => {
    dir = mkdtempSync(join(tmpdir(), 'licgate-state-writer-'));
    const file = join(dir, 'gone', 'server-state');
    // Each write begins with the state it writes: the calls count the tries.
    let tries = 0;
    const state: SavedServer[] = [{ backend: 'lic', server: 'a', address: '127.0.0.1:27000', admin: 'maint' }];
    let text = '';
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        text += chunk.toString();
        cb();
      },
    });
    const lines = (): { level: number; msg: string; failed_writes?: number; not_logged?: number }[] => text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));
    // Retries every 20 ms: all but the first failure fall inside the one-minute failure-log interval.
    writer = new AdminStateWriter(file, () => {
      tries++;
      return { servers: state, backends: [] };
    }, pino({ level: 'info' }, sink), 20);
    writer.changed();
    await waitFor(() => tries >= 4 && lines().length === 1, { timeoutMs: 5000, what: 'three retries after the logged failure' });
    const w = writer;
    writer = null;
    await w.flush();
    const failed = tries;
    expect(lines().map((l) => [l.level, l.failed_writes, l.not_logged])).toEqual([
      [50, 1, undefined],
      [50, failed, failed - 2],
    ]);
    expect(lines()[1]!.msg).toBe(`cannot write admin state file ${file} at the stop (ENOENT): what an admin set since its last write is lost, the next start does not restore it (${failed} failed write(s) since the last that succeeded, ${failed - 2} not logged)`);
  });
});

describe('parseAdminState', () => {
  it('an entry with a weight or configured_weight no server can have (negative, fractional, past 256) is invalid, and says what was expected and found', () => {
    const entry = (extra: object) => ({ backend: 'lic', server: 'a', address: '127.0.0.1:27000', admin: 'maint', ...extra });
    const { servers, invalid } = parseAdminState(JSON.stringify({ version: 1, servers: [
      entry({ weight: -1, configured_weight: 100 }),
      entry({ weight: 50, configured_weight: 1.5 }),
      entry({ weight: 1e9, configured_weight: 100 }),
      entry({ weight: 256, configured_weight: 0 }),
    ] }));
    expect(invalid).toEqual([
      'entry 1 (lic/a): expected "weight" to be a whole number 0-256, as a server\'s weight in the config, found -1',
      'entry 2 (lic/a): expected "configured_weight" to be a whole number 0-256, as a server\'s weight in the config, found 1.5',
      'entry 3 (lic/a): expected "weight" to be a whole number 0-256, as a server\'s weight in the config, found 1000000000',
    ]);
    expect(servers).toEqual([entry({ weight: 256, configured_weight: 0 })]);
  });
  it('reads the optional "backends" list, leaves out an entry that is not {backend, serving_tier 0-9} saying why, and ignores a top-level key it does not know', () => {
    const server = { backend: 'lic', server: 'a', address: '127.0.0.1:27000', admin: 'maint' };
    const parsed = parseAdminState(JSON.stringify({ version: 1, saved_at: '2026-01-01T00:00:00.000Z', servers: [server], backends: [{ backend: 'lic', serving_tier: 1 }, { backend: 'x', serving_tier: 10 }, { backend: 'y', serving_tier: 0.5 }, 'lic'], later: { what: 'a newer licgate' } }));
    expect(parsed).toEqual({
      servers: [server],
      backends: [{ backend: 'lic', serving_tier: 1 }],
      stick: [],
      invalid: [
        'backends entry 2: expected {backend, serving_tier: a whole number 0-9, tier_servers?: [server names]}, found {"backend":"x","serving_tier":10}',
        'backends entry 3: expected {backend, serving_tier: a whole number 0-9, tier_servers?: [server names]}, found {"backend":"y","serving_tier":0.5}',
        'backends entry 4: expected {backend, serving_tier: a whole number 0-9, tier_servers?: [server names]}, found "lic"',
      ],
    });
    // Not a list: the servers' entries are still good.
    expect(parseAdminState(JSON.stringify({ version: 1, servers: [server], backends: { lic: 1 } }))).toEqual({ servers: [server], backends: [], stick: [], invalid: ['expected "backends" to be a list, found {"lic":1}'] });
    // A file without the list (every licgate before it, and this one when no backend is kept on a tier).
    expect(parseAdminState(JSON.stringify({ version: 1, servers: [server] }))).toEqual({ servers: [server], backends: [], stick: [], invalid: [] });
  });

  it('reads the optional "stick" list, leaving out a table or a row that is not one, saying why', () => {
    const parsed = parseAdminState(JSON.stringify({ version: 1, servers: [], stick: [
      { backend: 'lic', servers: { a: '127.0.0.1:1' }, entries: [['10.0.0.1', 'a', 2, 1], ['10.0.0.2', 'a', 'soon', 1], 'x'] },
      { backend: 'lic2', servers: ['a'], entries: [] },
    ] }));
    expect(parsed).toEqual({ servers: [], backends: [], stick: [{ backend: 'lic', servers: { a: '127.0.0.1:1' }, entries: [['10.0.0.1', 'a', 2, 1]] }], invalid: [
      'stick entry 1 (lic): 2 row(s) not [client, server, expires ms, since ms]',
      'stick entry 2: expected {backend, servers: {name: address}, entries: [[client, server, expires, since]]}, found {"backend":"lic2","servers":["a"],"entries":[]}',
    ] });
    // Not a list: the servers' entries are still good.
    expect(parseAdminState(JSON.stringify({ version: 1, servers: [], stick: {} })).invalid).toEqual(['expected "stick" to be a list, found {}']);
  });
});

/**
 * A start whose state file holds `table` (entries and markers) for backend lic (`stick: source`,
 * servers a at 127.0.0.1:1 and b at 127.0.0.1:2): the model restored, the file, and the log's text.
 */
async function restoreStickFile(table: { entries: unknown[]; unstuck?: unknown }): Promise<{ model: Model; file: string; text: () => string }> {
  dir = mkdtempSync(join(tmpdir(), 'licgate-state-stick-'));
  const file = join(dir, 'server-state');
  const model = new Model(loadConfigText('admin: { listen: 127.0.0.1:0 }\nbackends:\n  - name: lic\n    stick: source\n    servers:\n      - { name: a, address: 127.0.0.1:1 }\n      - { name: b, address: 127.0.0.1:2 }\n'));
  writeFileSync(file, JSON.stringify({ version: 1, servers: [], stick: [{ backend: 'lic', servers: { a: '127.0.0.1:1', b: '127.0.0.1:2' }, ...table }] }));
  let text = '';
  const log = pino({ level: 'info' }, new Writable({ write: (c: Buffer, _e, cb) => ((text += c.toString()), cb()) }));
  writer = new AdminStateWriter(file, () => adminStateOf(model), log, 10_000, stickSourceOf(() => model));
  await restoreAdminState(model, writer, log);
  return { model, file, text: () => text };
}

describe('restoreAdminState: deletion markers', () => {
  it('does not restore a marker made after now (the clock stepped back since) or one whose client or server the peers would refuse, and says which', async () => {
    const now = Date.now();
    const [past, future] = [now - 60_000, now + 3_600_000];
    const unstuck = {
      servers: [['a', past], ['b', future]],
      cleared: future,
      clients: [['not-an-ip', 'a', past], ['10.0.0.1', 'bad name', past], ['10.0.0.2', 'a', future], ['10.0.0.3', 'a', past], ['10.0.0.4', '*', past], ['10.0.0.5', 'gone', past]],
    };
    const { model, text } = await restoreStickFile({ entries: [], unstuck });
    const u = model.backend('lic')!.stick!.unstucks();
    expect({ clients: u.clients.map(([c, sv]) => [c, sv]), servers: u.servers.map(([sv]) => sv), cleared: u.clearedAgo }, 'markers restored').toEqual({ clients: [['10.0.0.3', 'a'], ['10.0.0.4', '*'], ['10.0.0.5', 'gone']], servers: ['a'], cleared: null });
    const warned = text().split('\n').filter((l) => l.includes('deletion marker')).map((l) => JSON.parse(l) as { level: number; msg: string; skipped: number });
    expect(warned.map((l) => [l.level, l.skipped]), 'the warning').toEqual([[40, 5]]);
    expect(warned[0]!.msg).toContain('client "not-an-ip" is not an IP address; client 10.0.0.1\'s server "bad name" is not a server name; client 10.0.0.2\'s marker made at ');
  });
});

describe('restoreAdminState: stick entries', () => {
  it('does not restore an entry whose client is not an IP address (pushed, it cut the peers link off at every full push), says which, and writes the file again without it', async () => {
    const now = Date.now();
    const row = (client: string): [string, string, number, number] => [client, 'a', now + 3_600_000, now - 60_000];
    const { model, file, text } = await restoreStickFile({ entries: [row('not-an-ip'), row('10.0.0.1 x'), row('10.0.0.2')] });
    expect(model.backend('lic')!.stick!.clients(), 'entries restored').toEqual(['10.0.0.2']);
    const said = text().split('\n').filter((l) => l.includes('stick table of lic')).map((l) => JSON.parse(l) as { level: number; msg: string; restored?: number; dropped?: number });
    expect(said.map((l) => [l.level, l.msg.replace(file, 'FILE')])).toEqual([
      [40, 'stick table of lic: 2 entries from FILE not restored: expected a client IP address, found "not-an-ip", "10.0.0.1 x"'],
      [30, 'stick table of lic restored from FILE: 1 client(s) go back to their server; 0 expired'],
    ]);
    await waitFor(() => !readFileSync(file, 'utf8').includes('not-an-ip'), { timeoutMs: 5000, what: 'the file written again without the entries not restored' });
    expect((JSON.parse(readFileSync(file, 'utf8')) as { stick: { entries: string[][] }[] }).stick[0]!.entries.map((e) => e[0])).toEqual(['10.0.0.2']);
  });
});

describe('restoreAdminState: FlexLM triad standbys', () => {
  it('restores a standby to a checked server, not to one nothing checks (no check would clear it), and writes back what runs', async () => {
    dir = mkdtempSync(join(tmpdir(), 'licgate-state-standby-'));
    const file = join(dir, 'server-state');
    const model = new Model(loadConfigText('admin: { listen: 127.0.0.1:0 }\nbackends:\n  - name: lic\n    check: { type: tcp }\n    servers:\n      - { name: a, address: 127.0.0.1:1 }\n      - { name: b, address: 127.0.0.1:2 }\n  - name: plain\n    check: { type: none }\n    servers:\n      - { name: c, address: 127.0.0.1:3 }\n'));
    const entry = (backend: string, server: string, port: number, extra: object) => ({ backend, server, address: `127.0.0.1:${port}`, admin: 'ready', ...extra });
    writeFileSync(file, JSON.stringify({ version: 1, servers: [entry('lic', 'b', 2, { standby: true }), entry('plain', 'c', 3, { standby: true }), entry('lic', 'a', 1, { standby: 'yes' })] }));
    let text = '';
    const log = pino({ level: 'info' }, new Writable({ write: (c: Buffer, _e, cb) => ((text += c.toString()), cb()) }));
    writer = new AdminStateWriter(file, () => adminStateOf(model), log, 10_000);
    await restoreAdminState(model, writer, log);
    const [a, b] = model.backend('lic')!.servers;
    expect([a!.standby, b!.standby, model.backend('plain')!.servers[0]!.standby]).toEqual([false, true, false]);
    expect(b!.stateText).toBe('UP 1/3 (standby)');
    expect(model.backend('lic')!.servers.filter((s) => s.eligible).map((s) => s.name)).toEqual(['a']);
    const lines = text.split('\n').filter((l) => l !== '').map((l) => (JSON.parse(l) as { msg: string }).msg);
    expect(lines).toContain(`admin state of lic/b restored from ${file}: ready, weight 1/1; a FlexLM triad standby until its first check`);
    expect(lines).toContain(`admin state file ${file}: entry 3: expected {backend, server, address, admin: ready|drain|maint, weight?, configured_weight?, standby?}, found {"backend":"lic","server":"a","address":"127.0.0.1:1","admin":"ready","standby":"yes"}; skipped`);
    // What runs is not what the file holds (c's standby and a's entry are gone): written back at once.
    await waitFor(() => JSON.parse(readFileSync(file, 'utf8')).servers.length === 1, { timeoutMs: 5000, what: `${file} written back` });
    expect(JSON.parse(readFileSync(file, 'utf8')).servers).toEqual([entry('lic', 'b', 2, { standby: true })]);
  });
});

describe('adminStateOf: the serving tier', () => {
  it('does not save the backup a start serves from while the active servers await their first UP (init_state); saves it once they failed', () => {
    const model = new Model(loadConfigText('admin: { listen: 127.0.0.1:0 }\nbackends:\n  - name: lic\n    failback: manual\n    check: { type: tcp }\n    servers:\n      - { name: a, address: 127.0.0.1:1, init_state: down }\n      - { name: b, address: 127.0.0.1:2, backup: true }\n'));
    const lic = model.backend('lic')!;
    expect(lic.servingTier).toBe(1);
    // Saved, a restart in the window (or a write then, with no write after the quiet move to the
    // active tier) restored the backup as kept by an admin, which failback: manual held for good.
    expect(adminStateOf(model).backends).toEqual([]);
    lic.servers[0]!.checkFailed({ ok: false, reason: 'connection refused', durationMs: 1, at: 0 });
    expect(adminStateOf(model).backends).toEqual([{ backend: 'lic', serving_tier: 1, tier_servers: ['b'] }]);
  });
});
