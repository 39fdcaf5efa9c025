import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { parseCutDslsUsage } from '../../src/health/parse/dsls.js';
import type { LicenseInfo } from '../../src/health/parse/license-info.js';
import { parseCutLmstat } from '../../src/health/parse/lmstat.js';
import { Model } from '../../src/model/model.js';
import type { Server } from '../../src/model/server.js';
import { agentReportFor, licenseWeightFactor, parseAgentLine, renderAgentReply } from '../../src/serve/agent-reply.js';

/** A model of one backend `lic` with the given servers ("name weight [tier]"). */
function model(servers: string[], check = 'status'): Model {
  const lines = servers.map((s, i) => {
    const [name, weight, tier] = s.split(' ');
    return `      - { name: ${name}, address: 127.0.0.1:${27000 + i}, weight: ${weight}${tier ? `, tier: ${tier}` : ''} }`;
  });
  return new Model(loadConfigText(`admin: { listen: 127.0.0.1:0 }\nbackends:\n  - name: lic\n    check: { type: ${check}, rise: 1, fall: 1 }\n    servers:\n${lines.join('\n')}\n`));
}

const ok = (reason = 'reply matched', license?: LicenseInfo) => ({ ok: true, reason, durationMs: 1, at: performance.now(), ...(license ? { license } : {}) });
const bad = (reason: string) => ({ ok: false, reason, durationMs: 1, at: performance.now() });
const lic = (features: LicenseInfo['features']): LicenseInfo => ({ servers: [], vendors: [], features, errors: [] });
const servers = (m: Model): Server[] => m.backend('lic')!.servers;
const reply = (ss: readonly Server[], wf: { feature: string; min_percent: number } | null = null): string => renderAgentReply(agentReportFor(ss, wf));

describe('renderAgentReply', () => {
  it('writes health, admin state, weight, maxconn and a comment on one \\n-terminated line', () => {
    expect(renderAgentReply({ health: 'up', admin: 'ready', weightPercent: 100, maxconn: null, comment: '' })).toBe('up ready 100%\n');
    expect(renderAgentReply({ health: 'down', admin: 'ready', weightPercent: 0, maxconn: 30, comment: 'lmgrd not responding' })).toBe('down ready 0% maxconn:30 #lmgrd not responding\n');
    expect(renderAgentReply({ health: null, admin: 'maint', weightPercent: null, maxconn: null, comment: '' })).toBe('maint\n');
  });

  it('keeps a comment to one printable line so it cannot end the reply early or inject words', () => {
    const line = renderAgentReply({ health: 'down', admin: 'ready', weightPercent: 0, maxconn: null, comment: 'refused\r\nup ready 100%\tx\u0000y' });
    expect(line).toBe('down ready 0% #refused up ready 100% x y\n');
    expect(line.indexOf('\n')).toBe(line.length - 1);
    const long = renderAgentReply({ health: 'down', admin: 'ready', weightPercent: 0, maxconn: null, comment: 'x'.repeat(500) });
    expect(long.length).toBeLessThan(160);
    expect(long.endsWith('\n')).toBe(true);
  });

  it('rounds the weight and never writes a negative one', () => {
    expect(renderAgentReply({ health: 'up', admin: 'ready', weightPercent: 33.4, maxconn: null, comment: '' })).toBe('up ready 33%\n');
    expect(renderAgentReply({ health: 'up', admin: 'ready', weightPercent: -5, maxconn: null, comment: '' })).toBe('up ready 0%\n');
  });
});

describe('parseAgentLine (HAProxy 2.6 grammar)', () => {
  it('reads words in any order, separated by spaces, tabs or commas, case-insensitively', () => {
    expect(parseAgentLine('75%,DRAIN\tup')).toEqual({ health: 'up', admin: 'drain', weightPercent: 75, maxconn: null, comment: '', unknown: [] });
    expect(parseAgentLine('maxconn:30 ready')).toMatchObject({ admin: 'ready', maxconn: 30, health: null, weightPercent: null });
  });

  it('takes everything after # as the description and stops at the first CR or LF', () => {
    expect(parseAgentLine('down #lmgrd not responding # really\r\nup')).toMatchObject({ health: 'down', comment: 'lmgrd not responding # really' });
    expect(parseAgentLine('stopped\nup')).toMatchObject({ health: 'stopped' });
  });

  it('keeps the last word of each kind and lists words it does not know', () => {
    expect(parseAgentLine('up down fail 10% 20% ready maint')).toMatchObject({ health: 'fail', admin: 'maint', weightPercent: 20 });
    expect(parseAgentLine('up 50 50%x maxconn:x hello').unknown).toEqual(['50', '50%x', 'maxconn:x', 'hello']);
  });

  it('parses what renderAgentReply writes back to the same values', () => {
    const r = { health: 'down' as const, admin: 'drain' as const, weightPercent: 42, maxconn: 7, comment: 'no free tokens' };
    expect(parseAgentLine(renderAgentReply(r))).toEqual({ ...r, unknown: [] });
  });
});

describe('licenseWeightFactor (agent.weight_from)', () => {
  const wf = { feature: 'solver', min_percent: 10 };

  it('scales by the share of free tokens', () => {
    expect(licenseWeightFactor(lic([{ name: 'solver', issued: 40, in_use: 10 }]), wf)).toEqual({ percent: 75, exhausted: false, note: 'solver 30/40 free' });
  });

  it('never goes below min_percent while a token is free', () => {
    expect(licenseWeightFactor(lic([{ name: 'solver', issued: 100, in_use: 99 }]), wf).percent).toBe(10);
    expect(licenseWeightFactor(lic([{ name: 'solver', issued: 1000, in_use: 999 }]), { feature: 'solver', min_percent: 1 }).percent).toBe(1);
  });

  it('reports exhaustion at zero free tokens (and over-use)', () => {
    expect(licenseWeightFactor(lic([{ name: 'solver', issued: 5, in_use: 5 }]), wf)).toEqual({ percent: 0, exhausted: true, note: 'no free solver tokens (5 of 5 in use)' });
    expect(licenseWeightFactor(lic([{ name: 'solver', issued: 5, in_use: 7 }]), wf).exhausted).toBe(true);
  });

  it('sums a feature listed more than once', () => {
    expect(licenseWeightFactor(lic([{ name: 'solver', issued: 10, in_use: 10 }, { name: 'other', issued: 1, in_use: 0 }, { name: 'solver', issued: 10, in_use: 0 }]), wf)).toMatchObject({ percent: 50, exhausted: false });
  });

  it('leaves the weight alone without data: no license output, feature missing, uncounted, or no weight_from', () => {
    expect(licenseWeightFactor(undefined, wf)).toEqual({ percent: 100, exhausted: false, note: 'no license data for solver' });
    expect(licenseWeightFactor(lic([{ name: 'other', issued: 3, in_use: 3 }]), wf)).toEqual({ percent: 100, exhausted: false, note: 'solver not in license output' });
    expect(licenseWeightFactor(lic([{ name: 'solver', issued: null, in_use: 3 }]), wf)).toEqual({ percent: 100, exhausted: false, note: 'solver is uncounted' });
    expect(licenseWeightFactor(lic([{ name: 'solver', issued: 3, in_use: 3 }]), null)).toEqual({ percent: 100, exhausted: false, note: null });
  });

  it('an output cut before the feature: the last whole output with its age, else min_percent; never full weight', () => {
    const cut = { ...lic([{ name: 'other', issued: 3, in_use: 3 }]), truncated: true };
    const whole = (features: LicenseInfo['features']) => ({ license: lic(features), at: 1_000 });
    expect(licenseWeightFactor(cut, wf, whole([{ name: 'solver', issued: 40, in_use: 10 }]), 46_000)).toEqual({ percent: 75, exhausted: false, note: 'solver 30/40 free 45s ago; output since cut before solver' });
    // An old count of none free does not drain: tokens freed since would go unseen while outputs are cut.
    expect(licenseWeightFactor(cut, wf, whole([{ name: 'solver', issued: 5, in_use: 5 }]), 2_000)).toEqual({ percent: 10, exhausted: false, note: 'no free solver tokens (5 of 5 in use) 1s ago; output since cut before solver' });
    expect(licenseWeightFactor(cut, wf, null)).toEqual({ percent: 10, exhausted: false, note: 'solver not counted yet: output cut before it' });
    // The whole output did not list it either: the server does not serve it.
    expect(licenseWeightFactor(cut, wf, whole([{ name: 'other', issued: 3, in_use: 0 }]))).toEqual({ percent: 100, exhausted: false, note: 'solver not in license output' });
    // Listed before the cut: judged as now, whatever the whole output said.
    expect(licenseWeightFactor({ ...cut, features: [{ name: 'solver', issued: 10, in_use: 9 }] }, wf, whole([{ name: 'solver', issued: 10, in_use: 0 }]))).toEqual({ percent: 10, exhausted: false, note: 'solver 1/10 free' });
  });

  it('a feature with no free token before a cut: drains for lmstat, which counts a feature by its first listing; min_percent for DSLS, whose later rows may add a license of it', () => {
    const md2 = { feature: 'MD2', min_percent: 10 };
    const lmstat = [
      'License server status: 27000@lic1',
      'lic1: license server UP (MASTER) v11.16.2',
      'Vendor daemon status (on lic1):',
      '  dassault: UP v11.16.2',
      'Feature usage info:',
      'Users of MD2:  (Total of 2 licenses issued;  Total of 2 licenses in use)',
      '    jdupont ws-cad-014 ws-cad-014 (v424) (lic1/27000 201), start Mon 3/4 9:00',
      '    lrossi ws-cad-040 ws-cad-040 (v424) (lic1/27000 202), start Mon 3/4 9:05',
      'Users of HD2:  (Total of 5 licen',
    ].join('\n');
    expect(licenseWeightFactor(parseCutLmstat(lmstat), md2)).toEqual({ percent: 0, exhausted: true, note: 'no free MD2 tokens (2 of 2 in use)' });
    const license = 'Dassault Systemes,7C3C2E7E5F1A4B34,MD2,ConcurrentUser,STD,424,2025-12-31 23:59:00,YLC,0,2026-03-31 23:59:00';
    const dsls = [
      '> connect lic1 4084',
      'Connected to lic1:4084',
      '> getLicenseUsage -csv',
      'Editor,EditorId,Feature,Model,Commercial Type,Max Release Number,Max Release Date,Pricing Structure,Max Casual Duration,Expiration Date,Customer ID,Count,Inuse,',
      `${license},200000000012345,2,2,0,0,,,,,,,,,,`,
      `${license},200000000012345,2,1,0,0,ws-cad-014,jdupont,jdupont,`,
      `${license},200000000012345,2,1,0,0,ws-cad-040,lrossi,lrossi,`,
      // A renewal of MD2 (another Customer ID), with free tokens, could be any row after the cut.
      'Dassault Systemes,7C3C2E7E5F1A4B34,HD2,ConcurrentUser,STD,424,2025-12-31 23:59:00,YLC,0,2026-03-31 23:5',
    ].join('\n');
    expect(licenseWeightFactor(parseCutDslsUsage(dsls), md2)).toEqual({ percent: 10, exhausted: false, note: 'no free MD2 tokens (2 of 2 in use) before the output was cut; more may follow' });
  });
});

describe('agentReportFor (what the sidecar says)', () => {
  it('says up maint for a FlexLM triad standby, with the weight it carries as MASTER; ready while another server of the backend serves', () => {
    const m = model(['lic1 100', 'lic2 50'], 'exec, argv: [lmutil], parse: lmstat');
    const [lic1, lic2] = servers(m);
    const standby = { ...ok('triad standby: lic9 is MASTER [3/3 servers UP]'), standby: true };
    lic1!.checkSucceeded(standby);
    expect(lic1!.stateText).toBe('UP (standby)');
    expect(reply([lic1!])).toBe('up maint 100% #triad standby: lic9 is MASTER [3/3 servers UP]\n');
    lic2!.checkSucceeded(ok());
    // The backend as a whole: lic2 serves, at its own weight (50 of 150) only.
    expect(reply([lic1!, lic2!])).toBe('up ready 33%\n');
    lic1!.checkSucceeded(ok('lmgrd UP (MASTER)'));
    expect(reply([lic1!])).toBe('up ready 100%\n');
  });

  it('no health word while every server starts DOWN (init_state) and awaits its first check; down once a check failed', () => {
    const m = new Model(loadConfigText(`admin: { listen: 127.0.0.1:0 }\nbackends:\n  - name: lic\n    check: { type: status, rise: 2, fall: 1 }\n    servers:\n      - { name: a, address: 127.0.0.1:27000, weight: 100, init_state: down }\n      - { name: b, address: 127.0.0.1:27001, weight: 100, init_state: fully-down }\n`));
    const [a, b] = servers(m);
    expect(a!.stateText).toBe('DOWN 1/2');
    expect(reply([a!, b!])).toBe('ready 100% #no check yet\n');
    a!.checkFailed(bad('connection refused'));
    expect(reply([a!])).toBe('down ready 100% #DOWN: connection refused\n');
    expect(reply([b!])).toBe('ready 100% #no check yet\n');
    expect(reply([a!, b!])).toMatch(/^down ready 100% #no server up: /);
    b!.checkSucceeded(ok());
    // fully-down, rise 2: on its way UP after a passed check; a "down" would have HAProxy fail over.
    expect(reply([b!])).toBe('ready 100% #DOWN 1/2\n');
    b!.checkSucceeded(ok());
    expect(reply([b!])).toBe('up ready 100%\n');
  });

  it('one server: up ready 100% when healthy', () => {
    const m = model(['a 100']);
    const [a] = servers(m);
    a!.checkSucceeded(ok());
    expect(reply([a!])).toBe('up ready 100%\n');
  });

  it('one server: runtime weight and drain and maint', () => {
    const [a] = servers(model(['a 100']));
    a!.checkSucceeded(ok());
    a!.setWeight(50, 'test');
    expect(reply([a!])).toBe('up ready 50%\n');
    a!.setAdmin('drain', 'test');
    expect(reply([a!])).toBe('up drain 0% #draining\n');
    a!.setAdmin('maint', 'test');
    expect(reply([a!])).toBe('down maint 0% #maintenance\n');
    a!.setAdmin('ready', 'test');
    a!.setWeight(0, 'test');
    expect(reply([a!])).toBe('up ready 0%\n');
  });

  it('one server down: says why, and keeps the weight it will carry when it is back', () => {
    const [a] = servers(model(['a 100']));
    a!.setWeight(40, 'test');
    a!.checkFailed(bad('connection refused'));
    expect(reply([a!])).toBe('down ready 40% #DOWN: connection refused\n');
  });

  it('weight is relative to the configured weight, and never 0% for a positive weight', () => {
    const [a] = servers(model(['a 3']));
    a!.checkSucceeded(ok());
    a!.setWeight(1, 'test');
    expect(reply([a!])).toBe('up ready 33%\n');
    const [b] = servers(model(['b 256']));
    b!.checkSucceeded(ok());
    b!.setWeight(1, 'test');
    expect(reply([b!])).toBe('up ready 1%\n');
    const [c] = servers(model(['c 0']));
    c!.checkSucceeded(ok());
    expect(reply([c!])).toBe('up ready 0%\n');
  });

  it('an agent-set percentage (licgate behind licgate) scales the effective weight', () => {
    const [a] = servers(model(['a 100']));
    a!.checkSucceeded(ok());
    a!.setAgent({ state: 'up', weightPercent: 25, maxconn: null, reason: 'agent' }, 'test');
    expect(reply([a!])).toBe('up ready 25%\n');
     // At HAProxy's and licgate's default weight 1 the balancer's weight is whole (1), but the
    // percentage the agent said is what HAProxy behind this sidecar must get.
    const [b] = servers(model(['b 1']));
    b!.checkSucceeded(ok());
    b!.setAgent({ state: 'up', weightPercent: 50, maxconn: null, reason: 'agent' }, 'test');
    expect(b!.effectiveWeight).toBe(1);
    expect(reply([b!])).toBe('up ready 50%\n');
  });

  it('whole backend: weight of the UP servers over the configured total; down only when none is up', () => {
    const m = model(['a 100', 'b 100', 'c 200 1']);
    const [a, b, c] = servers(m);
    for (const s of [a, b, c]) s!.checkSucceeded(ok());
    expect(reply(servers(m))).toBe('up ready 100%\n');
    b!.checkFailed(bad('connection refused'));
    expect(reply(servers(m))).toBe('up ready 75%\n');
    a!.setAdmin('drain', 'test');
    c!.setAdmin('maint', 'test');
    expect(reply(servers(m))).toBe('up ready 0%\n');
    b!.checkSucceeded(ok());
    expect(reply(servers(m))).toBe('up ready 25%\n');
    b!.setAdmin('drain', 'test');
    expect(reply(servers(m))).toBe('up drain 0% #draining\n');
    for (const s of [a, b]) s!.setAdmin('ready', 'test');
    a!.checkFailed(bad('connection refused'));
    b!.checkFailed(bad('timeout'));
    expect(reply(servers(m))).toBe('down ready 50% #no server up: a connection refused, b timeout, c MAINT\n');
    c!.setAdmin('ready', 'test');
    expect(reply(servers(m))).toBe('up ready 50%\n');
  });

  it('reports maxconn only when every reported server has one', () => {
    const m = new Model(loadConfigText('admin: { listen: 127.0.0.1:0 }\nbackends:\n  - name: lic\n    servers:\n      - { name: a, address: 127.0.0.1:1, weight: 10, maxconn: 20 }\n      - { name: b, address: 127.0.0.1:2, weight: 10, maxconn: 5 }\n      - { name: c, address: 127.0.0.1:3, weight: 10 }\n'));
    const [a, b, c] = servers(m);
    for (const s of [a, b, c]) s!.checkSucceeded(ok());
    expect(reply([a!, b!])).toBe('up ready 100% maxconn:25\n');
    expect(reply([a!, b!, c!])).toBe('up ready 100%\n');
  });

  it('weight_from: scales by free tokens, drains at zero, says so in the comment', () => {
    const wf = { feature: 'solver', min_percent: 10 };
    const [a] = servers(model(['a 100']));
    a!.checkSucceeded(ok('lmstat ok', lic([{ name: 'solver', issued: 40, in_use: 30 }])));
    expect(reply([a!], wf)).toBe('up ready 25% #solver 10/40 free\n');
    a!.setWeight(50, 'test');
    expect(reply([a!], wf)).toBe('up ready 13% #solver 10/40 free\n');
    a!.checkSucceeded(ok('lmstat ok', lic([{ name: 'solver', issued: 40, in_use: 40 }])));
    expect(reply([a!], wf)).toBe('up drain 0% #no free solver tokens (40 of 40 in use)\n');
    a!.checkSucceeded(ok('no license output'));
    expect(reply([a!], wf)).toBe('up ready 50% #no license data for solver\n');
  });

  it('weight_from after a failed check while still UP (lmstat timed out at peak): the last whole count with its age, else min_percent', () => {
    const wf = { feature: 'solver', min_percent: 10 };
    const upTillThird = () => servers(new Model(loadConfigText('admin: { listen: 127.0.0.1:0 }\nbackends:\n  - name: lic\n    check: { type: status, rise: 1, fall: 3 }\n    servers:\n      - { name: a, address: 127.0.0.1:27000, weight: 100 }\n')))[0]!;
    const timeout = bad('timeout after 10000 ms (lmutil killed)');
    const a = upTillThird();
    a.checkSucceeded(ok('lmstat ok', lic([{ name: 'solver', issued: 10, in_use: 3 }])));
    a.checkFailed(timeout);
    expect(reply([a], wf)).toMatch(/^up ready 70% #solver 7\/10 free \d+s ago; last check failed: timeout after 10000 ms \(lmutil killed\)\n$/);
    // A failed check's own output ("Cannot connect to license server system") counts nothing either.
    a.checkFailed({ ...bad('lmgrd on lic1 DOWN'), license: lic([]) });
    expect(reply([a], wf)).toMatch(/^up ready 70% #solver 7\/10 free \d+s ago; last check failed: lmgrd on lic1 DOWN\n$/);
    // An old count of none free does not drain, as for a cut output.
    const b = upTillThird();
    b.checkSucceeded(ok('lmstat ok', lic([{ name: 'solver', issued: 10, in_use: 10 }])));
    b.checkFailed(timeout);
    expect(reply([b], wf)).toMatch(/^up ready 10% #no free solver tokens \(10 of 10 in use\) \d+s ago; last check failed: timeout/);
    // No output read whole yet: min_percent.
    const c = upTillThird();
    c.checkSucceeded(ok('lmstat ok, output cut', { ...lic([{ name: 'other', issued: 1, in_use: 0 }]), truncated: true }));
    c.checkFailed(timeout);
    expect(reply([c], wf)).toBe('up ready 10% #solver not counted yet: last check failed: timeout after 10000 ms (lmutil killed)\n');
    // DOWN: what it will carry when it is back, as before.
    c.checkFailed(timeout);
    c.checkFailed(timeout);
    expect(reply([c], wf)).toBe('down ready 100% #DOWN: timeout after 10000 ms (lmutil killed); no license data for solver\n');
  });

  it('weight_from over a backend: an exhausted server drops out, the others carry the weight', () => {
    const wf = { feature: 'solver', min_percent: 10 };
    const m = model(['a 100', 'b 100']);
    const [a, b] = servers(m);
    a!.checkSucceeded(ok('x', lic([{ name: 'solver', issued: 10, in_use: 10 }])));
    b!.checkSucceeded(ok('x', lic([{ name: 'solver', issued: 10, in_use: 5 }])));
    expect(reply(servers(m), wf)).toBe('up ready 25% #a: no free solver tokens (10 of 10 in use); b: solver 5/10 free\n');
  });
});
