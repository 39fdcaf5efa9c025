import type { AgentView } from '../../model/server.js';
import { parseAgentLine, type AgentAdminWord, type ParsedAgentLine } from '../../serve/agent-reply.js';
import { tcpExchange } from './tcp-exchange.js';
import { failedFrom, type Probe, type ProbeOutcome, type ProbeTarget } from './probe.js';

/**
 * Reading a HAProxy agent line from a server (usually its licgate sidecar), two ways:
 *
 * 1. `check: { type: agent, port: 27200 }` — the agent IS the health check. A reply whose health
 *    word is down/fail/stopped counts as a failed check; any other reply is a passed check (it
 *    answered); neither counts during the agent's own MAINT (Server.healthPaused). Health
 *    therefore moves through rise/fall like every other check, and the reply's drain/maint/ready,
 *    weight % and maxconn are applied with Server.setAgent.
 * 2. `agent_port: 27200` beside any `check:` — HAProxy's own model: a health check plus an
 *    auxiliary agent (AgentScheduler). The agent only ever calls Server.setAgent: "down" takes the
 *    server out at once, "up" merely withdraws the agent's own down and never overrides a failed
 *    health check (Server.up needs both), and an unreachable agent changes nothing.
 *
 * HAProxy has both on one server; licgate backends have one `check`, so (2) is an optional extra
 * loop rather than a second check section: one small scheduler, no new model state.
 * In both, what a reply does not mention stays as the agent last set it (HAProxy's stickiness),
 * so each server's last agent state is remembered here, not re-derived from one line.
 */
export interface AgentMemory {
  health: 'up' | 'down';
  admin: AgentAdminWord;
  weightPercent: number | null;
  /** HAProxy's `maxconn:N`: replaces the server's configured maxconn until the agent says otherwise. */
  maxconn: number | null;
  /** The last line, for reasons in /status and the log. */
  line: string;
}

/** The agent's state after `parsed`, starting from what it said before (or a fresh up/ready). */
export function mergeAgentLine(prev: AgentMemory | null, parsed: ParsedAgentLine, line: string): AgentMemory {
  const health = parsed.health === null ? (prev?.health ?? 'up') : parsed.health === 'up' ? 'up' : 'down';
  return {
    health,
    admin: parsed.admin ?? prev?.admin ?? 'ready',
    weightPercent: parsed.weightPercent ?? prev?.weightPercent ?? null,
    maxconn: parsed.maxconn ?? prev?.maxconn ?? null,
    line,
  };
}

/**
 * What the agent had said, as far as a server's agent view tells: for the agent check each time
 * (AgentProbe), for an agent loop that starts with no memory of its own while the server kept the
 * agent's word across a reload (Server.adoptRuntime).
 * A view that says down hides the admin word under it: that one starts over at ready; one that
 * says maint hides a down under it: that starts over at up.
 */
export function memoryFromView(view: AgentView): AgentMemory {
  const admin = view.state === 'drain' || view.state === 'maint' ? view.state : 'ready';
  return { health: view.state === 'down' ? 'down' : 'up', admin, weightPercent: view.weightPercent, maxconn: view.maxconn, line: '' };
}

/**
 * The model's view of an agent's state. `withHealth` false (the agent is the health check) leaves
 * health to the check result, so the view never says down. A down under the agent's own maint is
 * MAINT, as HAProxy shows it: a licgate sidecar says "down maint" all through a maintenance, whose
 * checks must stay paused; the down shows once the agent says ready.
 */
export function agentView(mem: AgentMemory, withHealth: boolean): AgentView {
  const state: AgentView['state'] = mem.admin === 'maint' ? 'maint' : withHealth && mem.health === 'down' ? 'down' : mem.admin === 'drain' ? 'drain' : 'up';
  return { state, weightPercent: mem.weightPercent, maxconn: mem.maxconn, reason: `agent says "${mem.line}"` };
}

export function sameAgentView(a: AgentView | null, b: AgentView | null): boolean {
  return a === b || (a !== null && b !== null && a.state === b.state && a.weightPercent === b.weightPercent && a.maxconn === b.maxconn && a.reason === b.reason);
}

const MAX_LINE_SHOWN = 100;

/**
 * Connects, sends `send` (HAProxy's agent-send; usually nothing) and reads one line. A reply that
 * ends without a line end is taken as the line (HAProxy 2.6 ignores it; licgate is lenient with
 * `echo -n` agents). Rejects with a short reason: refused, timeout, no reply, no line end.
 */
export async function readAgentLine(target: ProbeTarget, signal: AbortSignal, send: string, readLimit: number): Promise<string> {
  const ex = await tcpExchange(target, signal, send, 'line-end', readLimit);
  if (ex.stop === 'limit') throw new Error(`agent sent ${readLimit} bytes without a line end`);
  const line = ex.reply.split(/[\r\n]/, 1)[0]!.trim();
  if (line === '') throw new Error(ex.reply === '' ? 'agent closed without a reply' : 'agent sent an empty line');
  return line.length > MAX_LINE_SHOWN ? `${line.slice(0, MAX_LINE_SHOWN)}…` : line;
}

/**
 * `check: { type: agent }`: see (1) above. What the agent said before is the server's own view
 * (ProbeTarget.agent), not a memory kept here: it lives and goes with the server, so one removed in
 * the agent's maint and added back at its address starts fresh, as HAProxy's does, and a reload
 * that builds a new probe loses nothing. The view tells all the memory would (health is left to
 * the check result here), unlike the auxiliary agent's, whose down hides its admin word.
 */
export class AgentProbe implements Probe {
  constructor(private readonly send: string, private readonly readLimit: number) {}

  async run(target: ProbeTarget, signal: AbortSignal): Promise<ProbeOutcome> {
    let line: string;
    try {
      line = await readAgentLine(target, signal, this.send, this.readLimit);
    } catch (e) {
      return failedFrom(e);
    }
    const parsed = parseAgentLine(line);
    // A later reply that names only a weight must not clear the drain an earlier one set (HAProxy's stickiness).
    const mem = mergeAgentLine(target.agent ? memoryFromView(target.agent) : null, parsed, line);
    const down = parsed.health !== null && parsed.health !== 'up';
    const unknown = parsed.unknown.length ? ` (ignored: ${parsed.unknown.join(' ')})` : '';
    return { ok: !down, reason: `agent: ${line}${unknown}`, agent: agentView(mem, false) };
  }
}
