/**
 * What a license-output parser (lmstat, DSLS, ...) learned about one license service. It is the
 * `license:` part of GET /status, so the field names follow that JSON shape.
 */
export interface LicenseInfo {
  servers: { host: string; up: boolean; master: boolean }[];
  /** `server`: the lmgrd whose status listed the daemon ("Vendor daemon status (on HOST)"). */
  vendors: { name: string; up: boolean; version?: string; server?: string }[];
  /**
   * `issued` is null for uncounted (node-locked) features, which have no pool to exhaust; their
   * `in_use` counts the users lmstat lists under them.
   */
  features: { name: string; issued: number | null; in_use: number }[];
  /** Error lines recognised in the output, trimmed, e.g. "lmgrd is not running: Cannot connect to license server system. (-15,570:111 ...)". */
  errors: string[];
  /**
   * The servers of each `License server status:` line that names several (a three-server triad,
   * where only the MASTER serves), by their `servers` host. Absent when there is none: a one-server
   * license, or `-c port@a:port@b`, which prints a block of one server each.
   */
  triads?: string[][];
  /**
   * The tool's output passed read_limit and was cut there: the server and vendor status (lmstat),
   * or the status and CSV header (DSLS), are whole (the verdict needs them), `features` lists those
   * before the cut.
   */
  truncated?: boolean;
  /**
   * With `truncated`: a feature listed before the cut may be listed again after it with more
   * licenses (DSLS: one row per license, and a feature may have several), so none free is no
   * proof. lmstat counts a feature by its first listing, which a later cut cannot change.
   */
  features_may_continue?: boolean;
}
