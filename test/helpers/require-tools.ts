/**
 * requireTools — make a test depend on external programs, honestly.
 *
 *   beforeEach((ctx) => requireTools(['ip', 'keepalived'], ctx));
 *
 * House rule: prefer failing. A missing tool FAILS the test when CI=true (the CI image must
 * provide it) or when no test context is given; only a local run (CI unset) with a context may
 * skip, via ctx.skip(), and the skip note names the Debian package to install.
 * `missingTools()` is the side-effect-free check, e.g. to avoid building fixtures in beforeAll.
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Debian 12 package that ships each tool the integration tests use. */
const DEBIAN_PACKAGE: Readonly<Record<string, string>> = {
  ip: 'iproute2',
  bridge: 'iproute2',
  tc: 'iproute2',
  ss: 'iproute2',
  keepalived: 'keepalived',
  haproxy: 'haproxy',
  iptables: 'iptables',
  nft: 'nftables',
  curl: 'curl',
  node: 'nodejs',
  unshare: 'util-linux',
  nsenter: 'util-linux',
  mount: 'mount',
  flock: 'util-linux',
  taskset: 'util-linux',
  cc: 'gcc',
  script: 'bsdutils',
  sh: 'dash',
  iperf3: 'iperf3',
  wrk: 'wrk',
  nginx: 'nginx',
  strace: 'strace',
  faketime: 'faketime',
  promtool: 'prometheus',
  prometheus: 'prometheus',
  chromium: 'chromium',
  'systemd-analyze': 'systemd',
  'systemd-notify': 'systemd',
};

/** Where tools are looked up: $PATH plus the sbin directories a non-root $PATH often lacks. */
function searchPath(): string[] {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const d of ['/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/local/bin', '/usr/bin', '/bin']) {
    if (!dirs.includes(d)) dirs.push(d);
  }
  return dirs;
}

/** Absolute path of an executable, or undefined. */
export function whichTool(tool: string): string | undefined {
  if (tool.includes('/')) return isExecutable(tool) ? tool : undefined;
  for (const dir of searchPath()) {
    const candidate = join(dir, tool);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function debianPackageFor(tool: string): string | undefined {
  return DEBIAN_PACKAGE[tool];
}

/** The tools from `tools` that are not installed (empty when all are). */
export function missingTools(tools: readonly string[]): string[] {
  return tools.filter((t) => whichTool(t) === undefined);
}

/** The part of a vitest TestContext this helper needs (ctx.skip throws to end the test). */
export interface SkipContext {
  skip(note?: string): never;
}

export function missingToolsMessage(missing: readonly string[]): string {
  const parts = missing.map((t) => {
    const pkg = debianPackageFor(t);
    return pkg ? `${t} (Debian package: ${pkg})` : `${t} (Debian package: unknown, see \`apt-file search bin/${t}\`)`;
  });
  const pkgs = [...new Set(missing.map((t) => debianPackageFor(t)).filter((p): p is string => !!p))];
  const hint = pkgs.length > 0 ? `; install with: apt-get install -y ${pkgs.join(' ')}` : '';
  return `missing required tool${missing.length > 1 ? 's' : ''}: ${parts.join(', ')}${hint}`;
}

/**
 * Throw (CI, or no context) or skip (local run with a context) when a tool is missing.
 * Returns normally when every tool is present.
 */
export function requireTools(tools: readonly string[], ctx?: SkipContext): void {
  const missing = missingTools(tools);
  if (missing.length === 0) return;
  const message = missingToolsMessage(missing);
  if (process.env.CI === 'true') throw new Error(`${message} (CI=true: a missing tool fails the test)`);
  if (!ctx) throw new Error(message);
  ctx.skip(`${message} (skipped locally; CI fails instead)`);
}
