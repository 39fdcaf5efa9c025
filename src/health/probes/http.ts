import { isIP } from 'node:net';
import { Agent, buildConnector, request } from 'undici';
import { formatHostPort } from '../../config/address.js';
import type { CheckConfig, Matcher } from '../../config/schema.js';
import { isLocalResourceError } from '../../io/local-errors.js';
import { failed, inconclusive, passed, type Probe, type ProbeOutcome, type ProbeTarget } from './probe.js';
import { ReplyReader } from './reply-reader.js';
import { describeMatcher, firstLine } from './tcp-exchange.js';

export type HttpCheck = Pick<CheckConfig, 'path' | 'expect_status' | 'expect' | 'read_limit'>;

/**
 * GET http://host:port/path (e.g. RLM's web port 5054): the status must be one of `expect_status`
 * and, when `expect` is set, the body must match within the first `read_limit` bytes. Redirects
 * are not followed — a 302 to a login page is not health.
 */
export class HttpProbe implements Probe {
  /**
   * A link-local server's address with its zone (fe80::11%eth0) by the address alone: a URL cannot
   * carry the zone (http://[fe80::11%eth0]/ is invalid), so the request names the address and the
   * connection is opened with the zone.
   */
  private readonly zones = new Map<string, string>();
  // One dispatcher for every server of the backend. pipelining 0 turns keep-alive off: each check
  // opens its own connection (a dead server cannot hide behind a pooled socket) and nothing stays
  // open between checks, so the probe needs no close().
  private readonly agent = new Agent({ pipelining: 0, connect: zonedConnector(this.zones) });
  private readonly path: string;
  private readonly expectStatus: readonly number[];
  private readonly expect: Matcher | null;
  private readonly readLimit: number;

  constructor(check: HttpCheck) {
    this.path = check.path;
    this.expectStatus = [...check.expect_status];
    this.expect = check.expect;
    this.readLimit = check.read_limit;
  }

  async run(target: ProbeTarget, signal: AbortSignal): Promise<ProbeOutcome> {
    const zone = target.host.indexOf('%');
    const address = zone < 0 ? target.host : target.host.slice(0, zone);
    if (zone >= 0) this.zones.set(address, target.host);
    const url = `http://${formatHostPort({ host: address, port: target.port })}${this.path}`;
    // The name the admin configured, not the address it resolved to: a portal behind name-based
    // virtual hosting answers 404 to an address (what HAProxy's `http-check send hdr Host` is for).
    // A zone names an interface of this host only, so it is not sent.
    const name = target.name ?? address;
    const host = target.port === 80 ? hostForHeader(name) : formatHostPort({ host: name, port: target.port });
    let res;
    try {
      res = await request(url, { method: 'GET', dispatcher: this.agent, signal, headers: { host, 'user-agent': 'licgate-check', accept: '*/*' } });
    } catch (e) {
      if (signal.aborted) return failed('timeout waiting for HTTP response');
      const code = (e as NodeJS.ErrnoException).code;
      return isLocalResourceError(code) ? inconclusive(`licgate could not open a check connection: ${code}`) : failed(describeError(e));
    }
    // Destroying an unread undici body emits an AbortError; unhandled, that would crash the daemon.
    res.body.on('error', ignore);
    const status = `HTTP ${res.statusCode}`;
    if (!this.expectStatus.includes(res.statusCode)) {
      res.body.destroy();
      return failed(status);
    }
    if (!this.expect) {
      res.body.destroy();
      return passed(status);
    }
    return this.matchBody(res.body, status, signal);
  }

  /** Reads until `expect` matches, the body ends or `read_limit` bytes were read, whichever first. */
  private async matchBody(body: AsyncIterable<Buffer> & { destroy(): void }, status: string, signal: AbortSignal): Promise<ProbeOutcome> {
    const expect = this.expect!;
    const reply = new ReplyReader(expect, this.readLimit, 'utf8');
    try {
      for await (const chunk of body) {
        if (reply.push(chunk)) return passed(`${status}, body matched ${describeMatcher(expect)}`);
        if (reply.full) return failed(`${status}, no match for ${describeMatcher(expect)} in the first ${this.readLimit} bytes`);
      }
    } catch (e) {
      return failed(signal.aborted ? `${status}, timeout reading body (${reply.size} bytes, no match)` : `${status}, ${describeError(e)}`);
    } finally {
      body.destroy();
    }
    return failed(`${status}, body did not match ${describeMatcher(expect)}: "${firstLine(reply.text())}"`);
  }
}

function ignore(): void {}

/** undici's connector, dialing an address with the zone the probe recorded for it. */
function zonedConnector(zones: Map<string, string>): buildConnector.connector {
  const connect = buildConnector({});
  return (opts, callback) => connect({ ...opts, hostname: zones.get(opts.hostname) ?? opts.hostname }, callback);
}

/** RFC 9110 Host without a port: an IPv6 literal goes in brackets. */
function hostForHeader(host: string): string {
  return isIP(host) === 6 ? `[${host}]` : host;
}

function describeError(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  switch (err.code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ECONNRESET':
      return 'connection reset';
    case 'UND_ERR_SOCKET':
      return `connection closed before a complete response (${err.message})`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `cannot resolve host (${err.code})`;
    default:
      if (err.code?.startsWith('HPE_')) return `not a valid HTTP response (${err.code})`;
      return err.code ? `${err.code}: ${err.message}` : err.message;
  }
}
