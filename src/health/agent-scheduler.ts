import type { Backend } from '../model/backend.js';
import type { Server } from '../model/server.js';
import { carryOver, carryOverTimers } from './carry-over.js';
import { parseAgentLine } from '../serve/agent-reply.js';
import { agentView, memoryFromView, mergeAgentLine, readAgentLine, sameAgentView, type AgentMemory } from './probes/agent.js';
import { pollFirstTimeout } from '../io/poll-first-timeout.js';

/** An agent line is a few dozen bytes; more without a line end is not an agent. */
const READ_LIMIT = 1024;

/**
 * HAProxy's auxiliary agent check (`agent_port` / `agent_inter` on a backend): every agent_inter,
 * read each server's agent on that port and apply what it says with Server.setAgent — never a
 * health success or failure. As in HAProxy, an agent that cannot be reached changes nothing (the
 * health check is what tests reachability). See probes/agent.ts for why this is a separate loop.
 */
export class AgentScheduler {
  /** Each server's next read: its timer and when it is due (performance.now() time, as the check scheduler's). */
  private readonly timers = new Map<Server, { timer: NodeJS.Timeout; due: number }>();
  private readonly inflight = new Map<Server, AbortController>();
  private readonly memory = new Map<Server, AgentMemory>();
  private stopped = false;

  /** Not readonly: a reload that keeps the agent's port and send string retunes this scheduler (retarget). */
  constructor(
    private backend: Backend,
    readonly port: number,
    private interMs: number,
    private timeoutMs: number,
    readonly send = '',
  ) {}

  get backendName(): string {
    return this.backend.name;
  }

  start(): void {
    // A loop new with a reload that changed the agent (Daemon.startChecks), while a server kept the
    // agent's word: a later reply that names only a weight must not clear the drain it set
    // (HAProxy's stickiness).
    for (const s of this.backend.servers) if (s.agent !== null) this.memory.set(s, memoryFromView(s.agent));
    const n = this.backend.servers.length;
    const window = Math.min(this.interMs, 200);
    this.backend.servers.forEach((s, i) => this.schedule(s, Math.floor((window * i) / Math.max(n, 1))));
  }

  /**
   * Reload with the same agent (port and send string, the servers then keep its word: Server.adoptRuntime):
   * go on with `backend`, the one that replaced this scheduler's. A server that stays (Server.live)
   * keeps the time of its next read, a read under way (its reply is its successor's) and what the
   * agent said before: restarting the loop cut off the read under way, lost its reply, sent a burst
   * of reads to every agent at each reload, and rebuilt the memory from the server's view, which
   * forgets a drain said before a down. A server that left has its read stopped; one the reload
   * added is read as at start. A new agent_inter or timeout applies from the next read.
   */
  retarget(backend: Backend, interMs: number, timeoutMs: number): void {
    this.backend = backend;
    this.interMs = interMs;
    this.timeoutMs = timeoutMs;
    const staying = new Set(backend.servers);
    carryOver(this.memory, staying);
    carryOver(this.inflight, staying, (ctl) => ctl.abort());
    carryOverTimers(this.timers, staying, (s, dueIn) => {
      // A shorter agent_inter: a read due later than one new interval from now comes then.
      if (!this.inflight.has(s)) this.schedule(s, Math.min(dueIn, interMs));
    });
    const n = backend.servers.length;
    const window = Math.min(interMs, 200);
    backend.servers.forEach((s, i) => {
      if (!this.timers.has(s) && !this.inflight.has(s)) this.schedule(s, Math.floor((window * i) / Math.max(n, 1)));
    });
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t.timer);
    for (const c of this.inflight.values()) c.abort();
    this.timers.clear();
    this.inflight.clear();
  }

  private schedule(server: Server, delay: number): void {
    if (this.stopped) return;
    const timer = setTimeout(() => void this.run(server), delay);
    timer.unref();
    this.timers.set(server, { timer, due: performance.now() + delay });
  }

  private async run(server: Server): Promise<void> {
    if (this.stopped || this.inflight.has(server)) return;
    this.timers.delete(server);
    const ctl = new AbortController();
    this.inflight.set(server, ctl);
    // HAProxy uses agent-inter as the agent's timeout when no check timeout is set; never wait longer.
    const timer = pollFirstTimeout(() => ctl.abort(), Math.min(this.timeoutMs, this.interMs));
    let line: string | null = null;
    let error: string | null = null;
    try {
      // A name with no address yet: connecting would look it up on every read (Server.up).
      if (server.connectFamily === 0) throw new Error(server.noAddressReason);
      line = await readAgentLine({ host: server.connectHost, port: this.port }, ctl.signal, this.send, READ_LIMIT);
    } catch (e) {
      error = (e as Error).message;
    } finally {
      timer.clear();
    }
    // A reload that kept this server handed its read on (retarget): the reply is its successor's.
    // Not in flight any more: stopped, or the server left with a reload.
    const live = server.live();
    if (this.stopped || this.inflight.get(live) !== ctl) return;
    this.inflight.delete(live);
    server = live;
    if (line !== null) {
      server.agentError = null;
      const mem = mergeAgentLine(this.memory.get(server) ?? null, parseAgentLine(line), line);
      this.memory.set(server, mem);
      const view = agentView(mem, true);
      if (!sameAgentView(server.agent, view)) server.setAgent(view, view.reason);
    } else {
      // Kept on the server for /status: an agent that cannot be read changes nothing, so without
      // this a stale agent weight or drain would have no visible cause.
      server.agentError = error;
    }
    this.schedule(server, Math.max(1, Math.round(this.interMs * (1 - 0.05 * Math.random()))));
  }
}
