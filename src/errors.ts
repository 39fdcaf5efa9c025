/** Every error licgate raises on purpose carries a stable `code` that logs, tests and the CLI key on. */
export class LicgateError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = new.target.name;
  }
}

export interface SourcePosition {
  file: string;
  line: number;
  col: number;
}

/** One problem in a config file, positioned at the YAML node that caused it. */
export class ConfigIssue {
  constructor(readonly pos: SourcePosition, readonly message: string) {}
  toString(): string {
    return `${this.pos.file}:${this.pos.line}:${this.pos.col}: ${this.message}`;
  }
}

/**
 * The config could not be used; `issues` holds every problem found, not only the first, and
 * `warnings` those the same pass found, so the admin hears of them before fixing the errors.
 */
export class ConfigError extends LicgateError {
  constructor(readonly issues: ConfigIssue[], readonly warnings: readonly ConfigIssue[] = []) {
    super('E_CONFIG', issues.map(String).join('\n'));
  }
}

/**
 * A config's errors and warnings as gcc prints them (`FILE:L:C: message`, `FILE:L:C: warning:
 * message`), in file order as gcc and tsc do: the admin fixes them in one pass down the file. At one
 * position an error comes first.
 */
export function configDiagnostics(errors: readonly ConfigIssue[], warnings: readonly ConfigIssue[]): string[] {
  const all = [...errors.map((i) => [i, String(i)] as const), ...warnings.map((w) => [w, `${w.pos.file}:${w.pos.line}:${w.pos.col}: warning: ${w.message}`] as const)];
  return all.sort(([a], [b]) => a.pos.line - b.pos.line || a.pos.col - b.pos.col).map(([, text]) => text);
}

/** A listener could not be bound (port in use, address not local, permission). */
export class ListenError extends LicgateError {
  /** The failed bind's error code as Node names it ('EADDRINUSE'...): not the errno number. */
  readonly syscallCode: string | undefined;
  /** The address the bind asked for, once `address` was looked up (when known). */
  readonly host: string | undefined;

  constructor(readonly what: string, readonly address: string, cause: NodeJS.ErrnoException & { address?: string }) {
    super('E_LISTEN', `cannot listen for ${what} on ${address}: ${LISTEN_CAUSES[cause.code ?? ''] ?? cause.message}${cause.code ? ` (${cause.code})` : ''}`);
    this.syscallCode = cause.code;
    this.host = cause.address;
  }
}

/**
 * A reload's new listener asks for a port one of licgate's own listeners keeps: "address already
 * in use" would send the admin looking for another process.
 */
export class OwnPortError extends LicgateError {
  constructor(what: string, address: string, holder: string, held: string) {
    super('E_LISTEN_OWN_PORT', `cannot listen for ${what} on ${address}: the port is held by licgate's own ${holder} (${held}), which this config keeps there; give each listener its own port`);
  }
}

const LISTEN_CAUSES: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EADDRNOTAVAIL: 'no such address on this host',
  EACCES: 'permission denied (ports below 1024 need CAP_NET_BIND_SERVICE)',
};

/** A reload refused because licgate is shutting down; the running config stays until the stop. */
export class ShuttingDownError extends LicgateError {
  constructor(detail?: string) {
    super('E_SHUTTING_DOWN', `shutting down: reload refused${detail ? ` (${detail})` : ''}`);
  }
}

/**
 * The stop began while start-up or a reload waited on the lookup of a listen host (or start-up on
 * its server names): the wait is given up (a lookup itself cannot be cancelled) so the stop is not
 * held up by the resolver.
 */
export class StopBeganError extends LicgateError {
  constructor() {
    super('E_STOPPING', 'stopping: gave up waiting for a name lookup');
  }
}

/** A health probe failed; `reason` is short and goes into /status, STATUS replies and logs. */
export class ProbeError extends LicgateError {
  constructor(code: string, readonly reason: string) {
    super(code, reason);
  }
}

/** A runtime admin request was rejected; `status` is the HTTP status it maps to. */
export class AdminError extends LicgateError {
  constructor(code: string, readonly status: number, message: string) {
    super(code, message);
  }
}

/** Bad command-line usage; the CLI prints it with the command's help and exits 2. */
export class UsageError extends LicgateError {
  constructor(message: string) {
    super('E_USAGE', message);
  }
}

/** This Node lacks something licgate's data plane is built on (see src/io/tcp-handle.ts). */
export class UnsupportedRuntimeError extends LicgateError {
  constructor(found: string) {
    super('E_RUNTIME', `expected Node's libuv TCP bindings (tcp_wrap, stream_wrap) as Node 20.18 to 24 have them; found ${found}. Run licgate on Node 22 or 24 LTS.`);
  }
}
