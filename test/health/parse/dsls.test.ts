import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseCutDslsUsage, parseDslsUsage } from '../../../src/health/parse/dsls.js';
import { licenseWeightFactor } from '../../../src/serve/agent-reply.js';

function fixture(name: string): string {
  return readFileSync(new URL(`../../fixtures/dsls/${name}`, import.meta.url), 'utf8');
}

const HEADER =
  'Editor,EditorId,Feature,Model,Commercial Type,Max Release Number,Max Release Date,Pricing Structure,Max Casual Duration,Expiration Date,Customer ID,Count,Inuse,Tokens,Casual Usage (mn),Host,User,Internal ID,Active Process,Client Code Version,Session ID,Granted Since,Last Used At,Granted At,Queue Position';

describe('parseDslsUsage on license-usage.csv.txt', () => {
  const info = parseDslsUsage(fixture('license-usage.csv.txt'));

  it('takes the server from "Connected to", up and master', () => {
    expect(info.servers).toEqual([{ host: 'lic1', up: true, master: true }]);
    expect(info.vendors).toEqual([{ name: 'DSLS', up: true }]);
  });

  it('folds the per-session rows into one entry per feature', () => {
    expect(info.features).toEqual([
      { name: 'MD2', issued: 10, in_use: 3 },
      { name: 'HD2', issued: 5, in_use: 2 },
      { name: 'KIN', issued: 2, in_use: 0 },
    ]);
  });

  it('finds no errors', () => {
    expect(info.errors).toEqual([]);
  });

  it('parses identically with CRLF line endings', () => {
    expect(parseDslsUsage(fixture('license-usage.csv.txt').replaceAll('\n', '\r\n'))).toEqual(info);
  });
});

describe('parseDslsUsage on not-connected.txt', () => {
  const info = parseDslsUsage(fixture('not-connected.txt'));

  it('reports the host from the connect command as DOWN', () => {
    expect(info.servers).toEqual([{ host: 'lic1', up: false, master: false }]);
    expect(info.vendors).toEqual([{ name: 'DSLS', up: false }]);
    expect(info.features).toEqual([]);
  });

  it('records both error lines', () => {
    expect(info.errors).toEqual(['ERROR: Cannot connect to lic1:4084 (Connection refused)', 'not connected']);
  });
});

describe('parseDslsUsage on synthetic output', () => {
  it('maps columns by name, not position, through quoted commas', () => {
    const text = [
      'Connected to lic2:4084',
      'Queue Position,"Editor, quoted",Inuse,Feature,Count',
      ',"Dassault Systemes, SE",4,"ED2",7',
      ',"Dassault Systemes, SE",6,ED2,7',
      ',"x ""y"", z",1,"DIC, special",3',
    ].join('\n');
    expect(parseDslsUsage(text).features).toEqual([
      { name: 'ED2', issued: 7, in_use: 6 },
      { name: 'DIC, special', issued: 3, in_use: 1 },
    ]);
  });

  it('falls back to the connect command, then to localhost, for the host', () => {
    const csv = `${HEADER}\n`;
    expect(parseDslsUsage(`connect lic3 4084\n${csv}`).servers).toEqual([{ host: 'lic3', up: true, master: true }]);
    expect(parseDslsUsage(csv).servers).toEqual([{ host: 'localhost', up: true, master: true }]);
  });

  it('reads the host after the admin tool\'s own "admin >" prompt', () => {
    // DSLicSrv -admin prompts "admin >" and, with -run, echoes each command after it:
    // prometheus-license-exporter (src/dsls.rs) matches the line "admin >getLicenseUsage -csv" literally.
    const echoed = ['admin >connect lic2 4084', '\tSoftware version: 6.425.0', '\tReady: yes', 'admin >getLicenseUsage -csv', HEADER, 'admin >quit'].join('\n');
    expect(parseDslsUsage(echoed).servers).toEqual([{ host: 'lic2', up: true, master: true }]);
    const refused = ['admin >connect lic2 4084', 'ERROR: Cannot connect to lic2:4084 (Connection refused)', 'admin >getLicenseUsage -csv', 'not connected'].join('\n');
    expect(parseDslsUsage(refused).servers).toEqual([{ host: 'lic2', up: false, master: false }]);
  });

  it('adds up two licenses of one feature, and folds only the session rows of each license', () => {
    // getLicenseUsage prints one row group per license; the license columns (Expiration Date, Customer ID,
    // Max Release ...) tell licenses apart, as when a renewal of MD2 is enrolled before the old key expires.
    const license = (expires: string, count: number, inuse: number, session = ',,,,,,,,,'): string =>
      `Dassault Systemes,7C3C2E7E5F1A4B34,MD2,ConcurrentUser,STD,424,2025-12-31 23:59:00,YLC,0,${expires},200000000012345,${count},${inuse},0,0,${session}`;
    const text = [
      'Connected to lic1:4084',
      HEADER,
      license('2026-03-31 23:59:00', 10, 10),
      license('2026-03-31 23:59:00', 10, 1, 'ws-cad-014,jdupont,jdupont,CNEXT.exe,6.424.2,8F3A2C11,2024-03-11 08:02:14,2024-03-11 10:41:55,2024-03-11 08:02:14,'),
      license('2027-03-31 23:59:00', 5, 2),
      license('2027-03-31 23:59:00', 5, 1, 'ws-cad-022,amartin,amartin,CNEXT.exe,6.424.2,8F3A2C2F,2024-03-11 09:15:40,2024-03-11 10:42:03,2024-03-11 09:15:40,'),
    ].join('\n');
    const info = parseDslsUsage(text);
    expect(info.features).toEqual([{ name: 'MD2', issued: 15, in_use: 12 }]);
    // What agent.weight_from makes of it: 3 of 15 tokens free, not "no free MD2 tokens" (drain).
    expect(licenseWeightFactor(info, { feature: 'MD2', min_percent: 10 })).toEqual({ percent: 20, exhausted: false, note: 'MD2 3/15 free' });
  });

  it('reads a server that says "Ready: no" as not serving, though its CSV came back', () => {
    // DSLicSrv -admin prints the server's status after connect; prometheus-license-exporter (src/dsls.rs)
    // reads it with /^\s+Ready:\s+(\w+)/ and counts only "yes" as up.
    const row = 'Dassault Systemes,1,MD2,ConcurrentUser,STD,424,,YLC,0,,1,10,0,0,0,,,,,,,,,,';
    for (const [said, up] of [['Ready: no', false], ['READY: Yes', true]] as const) {
      const info = parseDslsUsage(['admin >connect lic2 4084', '\tSoftware version: 6.425.0', `\t${said}`, 'admin >getLicenseUsage -csv', HEADER, row].join('\n'));
      expect(info.servers).toEqual([{ host: 'lic2', up, master: up }]);
      expect(info.vendors).toEqual([{ name: 'DSLS', up }]);
      expect(info.features).toEqual([{ name: 'MD2', issued: 10, in_use: 0 }]);
      expect(info.errors).toEqual(up ? [] : ['Ready: no']);
    }
  });

  it('finds the CSV header whatever the case of its column names', () => {
    const row = 'Dassault Systemes,1,MD2,ConcurrentUser,STD,424,,YLC,0,,1,10,3,0,0,,,,,,,,,,';
    for (const header of [HEADER.replace('Inuse', 'InUse'), HEADER.toUpperCase(), HEADER.toLowerCase()]) {
      const info = parseDslsUsage(`Connected to lic1:4084\n${header}\n${row}\n`);
      expect(info.vendors, header).toEqual([{ name: 'DSLS', up: true }]);
      expect(info.features, header).toEqual([{ name: 'MD2', issued: 10, in_use: 3 }]);
    }
  });

  it('counts a CSV header with no rows as an answering server with no features', () => {
    const info = parseDslsUsage(`Connected to lic1:4084\n${HEADER}\n`);
    expect(info.vendors).toEqual([{ name: 'DSLS', up: true }]);
    expect(info.features).toEqual([]);
  });

  it('ignores rows without a numeric Count, such as a trailing prompt', () => {
    const row = 'Dassault Systemes,1,MD2,ConcurrentUser,STD,424,,YLC,0,,1,n/a,1,0,0,,,,,,,,,,';
    expect(parseDslsUsage(`${HEADER}\n${row}\n> quit\n`).features).toEqual([]);
  });

  it('returns no server and a DOWN vendor for empty output', () => {
    expect(parseDslsUsage('')).toEqual({
      servers: [],
      vendors: [{ name: 'DSLS', up: false }],
      features: [],
      errors: [],
    });
  });

  // Speed is the benchmarks' business; here only that 2 MB of near-miss header lines is read as nothing.
  it('reads 2 MB of garbage as no license data', () => {
    const garbage = 'Feature Count Inuse ,,,"\n'.repeat(87_382);
    const info = parseDslsUsage(garbage);
    expect(info.vendors).toEqual([{ name: 'DSLS', up: false }]);
    expect(info.features).toEqual([]);
  });
});

describe('parseCutDslsUsage (output cut at read_limit)', () => {
  const usage = fixture('license-usage.csv.txt');

  it('drops the row the cut fell in: its Count may be cut short', () => {
    // Cut inside HD2's first row, in its Count: "5" of "5,2,…" would read as 5 issued, 0 in use.
    const cut = usage.slice(0, usage.indexOf('HD2,') + usage.slice(usage.indexOf('HD2,')).indexOf(',5,') + 2);
    expect(parseCutDslsUsage(cut)).toEqual({
      servers: [{ host: 'lic1', up: true, master: true }],
      vendors: [{ name: 'DSLS', up: true }],
      features: [{ name: 'MD2', issued: 10, in_use: 3 }],
      errors: [],
      truncated: true,
      features_may_continue: true,
    });
  });

  it('is null when the cut fell before the CSV header was whole', () => {
    expect(parseCutDslsUsage(usage.slice(0, usage.indexOf('Count,Inuse')))).toBeNull();
  });
});
