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
  ev: 'granted' | 'checkin-sent' | 'checkin' | 'error' | 'closed';
  who?: string | null;
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

  event(ev: HeldEvent['ev']): HeldEvent | undefined {
    return this.events.find((e) => e.ev === ev);
  }

  waitEvent(ev: HeldEvent['ev'], timeoutMs: number): Promise<HeldEvent> {
    return waitFor(() => this.event(ev), {
      timeoutMs,
      intervalMs: 20,
      what: `held session (${this.proc.label}) event "${ev}" (events so far: ${JSON.stringify(this.events)})`,
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
