/**
 * License clients for the HA tests, run inside a lab namespace as small Node programs (argv only,
 * no shell). They speak the simulator's line protocol (src/simulator/license-simulator.ts):
 * HELLO → "HELLO <server name>", CHECKOUT <feature> 1 → "GRANTED <handle>", CHECKIN <handle> → "OK".
 *
 * startCheckoutLoop: a new connection every `intervalMs` (not waiting for the previous one, like
 *   many license clients starting at random moments), each doing HELLO then CHECKOUT and closing;
 *   one JSON line per attempt → a CheckoutLog (an AttemptLog of CheckoutAttempt).
 * startHeldSession: one long-lived session holding a granted license (as FlexLM keeps its vendor
 *   daemon connection open); it checks the license in and closes once a trigger file exists.
 * startFlexlmHeldSession: the same for the simulator's FlexLM mode (two ports, tickets), with
 *   heartbeats, and a reconnect (lmgrd step, then vendor step) when the vendor connection breaks.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { AttemptLog, type Attempt } from './attempt-log.js';
import type { Lab, LabProcess } from './lab.js';
import { waitFor } from '../../helpers/wait-for.js';

/** One attempt: `who` is the license server that said HELLO; `step` is where it ended. */
export interface CheckoutAttempt extends Attempt {
  n: number;
  step: 'connect' | 'hello' | 'checkout' | 'done';
}

const CHECKOUT_LOOP_JS = `
const net = require('node:net');
const [host, port, interval, timeout, feature] = process.argv.slice(1);
let n = 0;
function attempt() {
  const id = ++n, t = Date.now();
  let buf = '', step = 'connect', who = null, done = false;
  const s = net.connect({ host, port: Number(port) });
  const finish = (ok, err) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    s.destroy();
    process.stdout.write(JSON.stringify({ n: id, t, ms: Date.now() - t, ok, who, step, err }) + '\\n');
  };
  const timer = setTimeout(() => finish(false, 'timeout'), Number(timeout));
  s.setNoDelay(true);
  s.setEncoding('utf8');
  s.on('connect', () => { step = 'hello'; s.write('HELLO\\n'); });
  s.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\\n')) >= 0) {
      const line = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      if (step === 'hello') {
        const m = /^HELLO (\\S+)$/.exec(line);
        if (!m) return finish(false, 'unexpected HELLO reply: ' + line.slice(0, 80));
        who = m[1];
        step = 'checkout';
        s.write('CHECKOUT ' + feature + ' 1\\n');
      } else if (step === 'checkout') {
        if (/^GRANTED \\S+$/.test(line)) { step = 'done'; return finish(true); }
        return finish(false, 'checkout refused: ' + line.slice(0, 80));
      }
    }
    if (buf.length > 4096) finish(false, 'reply line too long');
  });
  s.on('end', () => finish(false, 'closed by peer'));
  s.on('error', (e) => finish(false, e.code || e.message));
}
setInterval(attempt, Number(interval));
attempt();
`;

export interface CheckoutLoopOptions {
  host: string;
  port: number;
  intervalMs: number;
  /** Per attempt: connect + HELLO + CHECKOUT must finish within this. */
  timeoutMs: number;
  feature?: string;
  label?: string;
}

/** The loop's attempts; they are numbered in start order, which lets a test wait until all before a moment are in. */
export class CheckoutLog extends AttemptLog<CheckoutAttempt> {
  /** Resolves once every attempt that started before `t` has finished (and one started after it has). */
  waitSettled(t: number, timeoutMs: number): Promise<true> {
    return waitFor(
      () => {
        let firstAfter = Infinity;
        for (const a of this.samples) if (a.t >= t && a.n < firstAfter) firstAfter = a.n;
        if (firstAfter === Infinity) return false;
        const seen = new Set<number>();
        for (const a of this.samples) if (a.n < firstAfter) seen.add(a.n);
        return seen.size === firstAfter - 1;
      },
      { timeoutMs, intervalMs: 20, what: `every client attempt started before ${new Date(t).toISOString()} finished (last: ${JSON.stringify(this.last())})` },
    );
  }
}

export function startCheckoutLoop(lab: Lab, clientHost: string, o: CheckoutLoopOptions): CheckoutLog {
  const proc = lab.spawn(
    clientHost,
    [process.execPath, '-e', CHECKOUT_LOOP_JS, o.host, String(o.port), String(o.intervalMs), String(o.timeoutMs), o.feature ?? 'solver'],
    { label: o.label ?? 'checkout-loop' },
  );
  return new CheckoutLog(proc);
}

const HELD_SESSION_JS = `
const net = require('node:net'), fs = require('node:fs');
const [host, port, trigger, feature, replyTimeout] = process.argv.slice(1);
const out = (o) => process.stdout.write(JSON.stringify({ t: Date.now(), ...o }) + '\\n');
let buf = '', step = 'connect', handle = null, who = null, poll = null, replyTimer = null;
const s = net.connect({ host, port: Number(port) });
s.setNoDelay(true);
s.setEncoding('utf8');
s.on('connect', () => { step = 'hello'; s.write('HELLO\\n'); });
s.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\\n')) >= 0) {
    const line = buf.slice(0, i).trim();
    buf = buf.slice(i + 1);
    if (step === 'hello') {
      who = (/^HELLO (\\S+)$/.exec(line) || [])[1] || null;
      step = 'checkout';
      s.write('CHECKOUT ' + feature + ' 1\\n');
    } else if (step === 'checkout') {
      const m = /^GRANTED (\\S+)$/.exec(line);
      if (!m) { out({ ev: 'error', step, err: 'checkout refused: ' + line }); s.destroy(); return; }
      handle = m[1];
      step = 'held';
      out({ ev: 'granted', who, handle });
      poll = setInterval(() => {
        if (!fs.existsSync(trigger)) return;
        clearInterval(poll);
        step = 'checkin';
        out({ ev: 'checkin-sent', handle });
        s.write('CHECKIN ' + handle + '\\n');
        replyTimer = setTimeout(() => { out({ ev: 'error', step, err: 'no reply to CHECKIN' }); s.destroy(); }, Number(replyTimeout));
      }, 20);
    } else if (step === 'checkin') {
      clearTimeout(replyTimer);
      out({ ev: 'checkin', reply: line });
      step = 'closing';
      s.end();
    }
  }
});
s.on('end', () => { if (step !== 'closing') out({ ev: 'error', step, err: 'closed by peer' }); });
s.on('error', (e) => out({ ev: 'error', step, err: e.code || e.message }));
s.on('close', () => { clearInterval(poll); clearTimeout(replyTimer); out({ ev: 'closed', step }); process.exit(0); });
`;

export interface HeldEvent {
  t: number;
  ev: 'granted' | 'checkin-sent' | 'checkin' | 'error' | 'closed' | 'heartbeat' | 'denied' | 'lost';
  who?: string | null;
  /** FlexLM client: the checkout round (1, then one more per reconnect) and its duration. */
  round?: number;
  ms?: number;
  handle?: string;
  reply?: string;
  step?: string;
  err?: string;
}

/** A license session held open until release(); its events in the order they happened. */
export class HeldSession {
  readonly events: HeldEvent[] = [];

  constructor(
    readonly proc: LabProcess,
    private readonly triggerFile: string,
  ) {
    const rl = createInterface({ input: proc.child.stdout! });
    rl.on('line', (line) => {
      try {
        this.events.push(JSON.parse(line) as HeldEvent);
      } catch {
        /* not an event */
      }
    });
  }

  /** The first `ev` at or after `since` (epoch ms). */
  event(ev: HeldEvent['ev'], since = 0): HeldEvent | undefined {
    return this.events.find((e) => e.ev === ev && e.t >= since);
  }

  waitEvent(ev: HeldEvent['ev'], timeoutMs: number, since = 0): Promise<HeldEvent> {
    return waitFor(() => this.event(ev, since), {
      timeoutMs,
      intervalMs: 20,
      what: `held session (${this.proc.label}) event "${ev}"${since ? ` at or after ${new Date(since).toISOString()}` : ''} (events so far: ${JSON.stringify(this.events.slice(-20))})`,
    });
  }

  /** Tell the client to check its license in and close (the trigger file appears). */
  release(): void {
    if (!existsSync(this.triggerFile)) writeFileSync(this.triggerFile, 'go\n', { mode: 0o644 });
  }
}

export function startHeldSession(
  lab: Lab,
  clientHost: string,
  o: { host: string; port: number; triggerFile: string; label: string; replyTimeoutMs?: number; feature?: string },
): HeldSession {
  const proc = lab.spawn(
    clientHost,
    [process.execPath, '-e', HELD_SESSION_JS, o.host, String(o.port), o.triggerFile, o.feature ?? 'solver', String(o.replyTimeoutMs ?? 3000)],
    { label: o.label },
  );
  return new HeldSession(proc, o.triggerFile);
}

const FLEXLM_HELD_JS = `
const net = require('node:net'), fs = require('node:fs');
const [host, lmgrdPort, trigger, feature, heartbeatMs, retryMs, stepMs] = process.argv.slice(1).map((a, i) => (i === 1 || i > 3 ? Number(a) : a));
const out = (o) => process.stdout.write(JSON.stringify({ t: Date.now(), ...o }) + '\\n');
const errText = (e) => e.code || e.message;
function open(port) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    const timer = setTimeout(() => { s.destroy(); reject(new Error('connect timeout')); }, stepMs);
    s.once('error', (e) => { clearTimeout(timer); reject(e); });
    s.once('connect', () => { clearTimeout(timer); s.removeAllListeners('error'); resolve(lines(s)); });
  });
}
// One reply line per request line, in order; a close fails what is still waiting.
function lines(s) {
  let buf = '';
  const waiting = [];
  const c = { s, onclose: null, ask(line) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error('no reply to ' + line.split(' ')[0])); s.destroy(); }, stepMs);
      waiting.push({ resolve: (l) => { clearTimeout(timer); resolve(l); }, reject: (e) => { clearTimeout(timer); reject(e); } });
      s.write(line + '\\n');
    });
  } };
  s.setNoDelay(true);
  s.setEncoding('utf8');
  s.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\\n')) >= 0) { const l = buf.slice(0, i).trim(); buf = buf.slice(i + 1); waiting.shift()?.resolve(l); }
  });
  s.on('error', (e) => { c.err = errText(e); });
  s.on('close', () => { for (const w of waiting.splice(0)) w.reject(new Error(c.err || 'closed by peer')); c.onclose?.(); });
  return c;
}
let round = 0;
async function checkout() {
  for (;;) {
    const t = Date.now();
    round++;
    let step = 'lmgrd';
    try {
      const l = await open(lmgrdPort);
      const vendorLine = await l.ask('HELLO').finally(() => l.s.end());
      const m = /^VENDOR (\\d+) (\\S+)$/.exec(vendorLine);
      if (!m) throw new Error('lmgrd said ' + vendorLine.slice(0, 80));
      step = 'vendor';
      const v = await open(Number(m[1]));
      const reply = await v.ask('CHECKOUT ' + feature + ' 1 ' + m[2]);
      const g = /^GRANTED (\\S+)$/.exec(reply);
      if (!g) { v.s.destroy(); out({ ev: 'denied', round, ms: Date.now() - t, reply }); }
      else { out({ ev: 'granted', round, ms: Date.now() - t, handle: g[1], who: g[1].replace(/-\\d+$/, '') }); return hold(v, g[1]); }
    } catch (e) {
      out({ ev: 'error', round, step, err: errText(e) });
    }
    // FlexLM's own retry: the next round after an interval, not at once.
    await new Promise((r) => setTimeout(r, retryMs));
  }
}
function hold(v, handle) {
  let releasing = false;
  const beat = setInterval(() => {
    if (fs.existsSync(trigger)) {
      clearInterval(beat);
      releasing = true;
      out({ ev: 'checkin-sent', handle });
      v.ask('CHECKIN ' + handle).then((reply) => { out({ ev: 'checkin', reply }); v.s.end(); }, (e) => out({ ev: 'error', step: 'checkin', err: errText(e) }));
      return;
    }
    v.ask('HELLO').then((reply) => out({ ev: 'heartbeat', who: (/^HELLO (\\S+)$/.exec(reply) || [])[1] || null }), () => {});
  }, heartbeatMs);
  v.onclose = () => {
    clearInterval(beat);
    if (releasing) { out({ ev: 'closed', step: 'closing' }); process.exit(0); }
    out({ ev: 'lost', handle, err: v.err || 'closed by peer' });
    checkout();
  };
}
checkout();
`;

export interface FlexlmHeldOptions {
  /** The address the client was configured with (the VIP). */
  host: string;
  lmgrdPort: number;
  triggerFile: string;
  label: string;
  feature?: string;
  /** Vendor-connection heartbeat (HELLO) interval; real FlexLM: about 2 minutes. */
  heartbeatMs?: number;
  /** Pause between two checkout rounds that failed. */
  retryMs?: number;
  /** Per connect and per reply. */
  stepMs?: number;
}

/**
 * A FlexLM client holding one license through the simulator's FlexLM mode: lmgrd step (HELLO →
 * `VENDOR <port> <ticket>`, close), vendor step (`CHECKOUT <feature> 1 <ticket>` → GRANTED, kept
 * open), then a HELLO heartbeat on the vendor connection. When that connection breaks it logs
 * `lost` and checks out again, both steps, every `retryMs` until granted, as a FlexLM client
 * reconnects. Events: `granted` {round, ms, handle, who (the server, from the handle)}, `denied`
 * {round, reply}, `error` {round, step, err}, `heartbeat` {who}, `lost`, and on release()
 * `checkin-sent`, `checkin`, `closed`.
 */
export function startFlexlmHeldSession(lab: Lab, clientHost: string, o: FlexlmHeldOptions): HeldSession {
  const argv = [o.host, o.lmgrdPort, o.triggerFile, o.feature ?? 'solver', o.heartbeatMs ?? 200, o.retryMs ?? 100, o.stepMs ?? 1000].map(String);
  const proc = lab.spawn(clientHost, [process.execPath, '-e', FLEXLM_HELD_JS, ...argv], { label: o.label });
  return new HeldSession(proc, o.triggerFile);
}
