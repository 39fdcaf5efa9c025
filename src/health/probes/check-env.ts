/**
 * What an exec check command gets of licgate's own environment. Not all of it: that may hold the
 * admin token (LICGATE_TOKEN, exported for `licgate ctl` in the shell that started licgate),
 * systemd's CREDENTIALS_DIRECTORY, proxy URLs with passwords, and a check command (a vendor's
 * wrapper script, a 32-bit lmutil) has no use for them. Kept: where to find programs and
 * libraries, the user, the time zone, and what license tools read to find their servers.
 */
const KEPT = new Set(['PATH', 'HOME', 'USER', 'LOGNAME', 'TMPDIR', 'TZ', 'LD_LIBRARY_PATH']);
/** LM_LICENSE_FILE and a vendor's MLM_LICENSE_FILE (FlexNet), RLM_LICENSE and an ISV's FOO_LICENSE (RLM), FLEXLM_TIMEOUT, DSLS_CONFIG. */
const LICENSE_VARIABLE = /^(LM|FLEXLM|RLM|DSLS)_|_LICENSE(_FILE)?$/;

export function checkEnvironment(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && (KEPT.has(k) || LICENSE_VARIABLE.test(k))) out[k] = v;
  return out;
}
