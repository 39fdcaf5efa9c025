import type { Backend } from '../model/backend.js';
import type { Server } from '../model/server.js';
import { parseAgentLine } from '../serve/agent-reply.js';
import { agentView, memoryFromView, mergeAgentLine, readAgentLine, sameAgentView, type AgentMemory } from './probes/agent.js';

/** An agent line is a few dozen bytes; more without a line end is not an agent. */
const READ_LIMIT = 1024;

/**
 * HAProxy's auxiliary agent check (`agent_port` / `agent_inter` on a backend): every agent_inter,
 * read each server's agent on that port and apply what it says with Server.setAgent — never a
 * health success or failure. As in HAProxy, an agent that cannot be reached changes nothing (the
 * health check is what tests reachability). See probes/agent.ts for why this is a separate loop.
 */
export class AgentScheduler {
  private readonly timers = new Map<Server, NodeJS.Timeout>();
  private readonly inflight = new Map<Server, AbortController>();
  private readonly memory = new Map<Server, AgentMemory>();
  private stopped = false;

  constructor(
    private readonly backend: Backend,
    private readonly port: number,
    private readonly interMs: number,
    private readonly timeoutMs: number,
    private readonly send = '',
  ) {}

  start(): void {
    // A reload starts a new loop, but the servers kept what the agent said: a later reply that names
    // only a weight must not clear the drain an earlier one set (HAProxy's stickiness).
    for (const s of this.backend.servers) if (s.agent !== null) this.memory.set(s, memoryFromView(s.agent));
    const n = this.backend.servers.length;
    const window = Math.min(this.interMs, 200);
    this.backend.servers.forEach((s, i) => this.schedule(s, Math.floor((window * i) / Math.max(n, 1))));
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    for (const c of this.inflight.values()) c.abort();
    this.timers.clear();
    this.inflight.clear();
  }

  private schedule(server: Server, delay: number): void {
    if (this.stopped) return;
    const t = setTimeout(() => void this.run(server), delay);
    t.unref();
    this.timers.set(server, t);
  }

  private async run(server: Server): Promise<void> {
    if (this.stopped || this.inflight.has(server)) return;
    const ctl = new AbortController();
    this.inflight.set(server, ctl);
    // HAProxy uses agent-inter as the agent's timeout when no check timeout is set; never wait longer.
    const timer = setTimeout(() => ctl.abort(), Math.min(this.timeoutMs, this.interMs));
    let line: string | null = null;
    try {
      // A name with no address yet: connecting would look it up on every read (Server.up).
      if (server.connectFamily === 0) throw new Error(server.noAddressReason);
      line = await readAgentLine({ host: server.connectHost, port: this.port }, ctl.signal, this.send, READ_LIMIT);
    } catch (e) {
      // Kept on the server for /status: an agent that cannot be read changes nothing, so without
      // this a stale agent weight or drain would have no visible cause.
      if (!this.stopped) server.agentError = (e as Error).message;
    } finally {
      clearTimeout(timer);
      this.inflight.delete(server);
    }
    if (this.stopped) return;
    if (line !== null) {
      server.agentError = null;
      const mem = mergeAgentLine(this.memory.get(server) ?? null, parseAgentLine(line), line);
      this.memory.set(server, mem);
      const view = agentView(mem, true);
      if (!sameAgentView(server.agent, view)) server.setAgent(view, view.reason);
    }
    this.schedule(server, Math.max(1, Math.round(this.interMs * (1 - 0.05 * Math.random()))));
  }
}
