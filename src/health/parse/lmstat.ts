import { findHost } from '../../config/address.js';
import type { LicenseInfo } from './license-info.js';

type Server = LicenseInfo['servers'][number];
type Vendor = LicenseInfo['vendors'][number];
type Feature = LicenseInfo['features'][number];

// No real lmstat line comes near this length; skipping longer lines keeps a flood of garbage from
// costing regex time in proportion to its length.
const MAX_LINE_CHARS = 4096;
// The errors list ends up in /status and logs, so a misbehaving server must not be able to bloat it.
const MAX_ERRORS = 20;
const MAX_ERROR_CHARS = 200;
// One lmstat run asks a license path of a few entries; the list is in /status too.
const MAX_TRIADS = 20;

const SERVER_LIST = /^License server status:\s*(.*)$/i;
const SERVER_STATE = /^(\S+): license server (UP|DOWN)\b(.*)$/i;
const SERVER_UNREACHABLE = /^(\S+): Cannot connect to license server system/i;
const VENDOR_SECTION = /^Vendor daemon status\b(?:\s*\(on ([^)\s]+)\))?/i;
const VENDOR_STATE = /^(\S+): (UP|DOWN)\b\s*(?:v?(\S+))?/i;
// Anything else in the vendor section is the daemon's error text, e.g. "MLM: The desired vendor
// daemon is down. (-97,121)" — the daemon is not serving.
const VENDOR_OTHER = /^(\S+): (.+)$/;
const FEATURE_SECTION = /^Feature usage info:/i;
const USERS_OF = /^Users of (\S+?):\s*(.*)$/i;
const COUNTED = /^\(Total of (\d+) licenses? (?:issued|available)(?:;\s*Total of (\d+) licenses? in use)?\)/i;
const UNCOUNTED = /^\(Uncounted\b/i;
// A user line under a feature: "user host display (v32) (lic1/27000 201), start Mon 3/4 9:00[, 2 licenses]".
const USER_LINE = /\(v[^)]*\)\s+\([^)]*\/\d+\s+\d+\),\s*start\b/i;
const USER_LICENSES = /,\s*(\d+) licenses?\s*$/i;
const ERROR_TEXT =
  /cannot connect to license server system|lmgrd is not running|license server machine is down|not responding|cannot find license file|cannot read data from license server|vendor daemon is down|error getting status|cannot get users of|\(error:/i;

type Section = 'none' | 'servers' | 'vendors' | 'features';

/**
 * Reads `lmutil lmstat -a` text. The exit code of lmutil says little (it is 0 with a dead triad
 * member and sometimes with no server at all), so everything comes from the text. Tolerates the
 * Windows flavour: CRLF and extra indentation on every line.
 */
export function parseLmstat(text: string): LicenseInfo {
  return scan(text).info;
}

/**
 * Reads lmstat text cut at read_limit: a busy server's `lmstat -a` lists every user and can pass
 * 1 MiB at peak use, which must not mark the server DOWN exactly then. lmstat prints the server and
 * vendor daemon status before the feature list, so once that list has begun they are whole: the
 * result is marked `truncated` and has the features before the cut. Null when the cut fell before
 * the feature list, since a half-read status (a triad member or a vendor daemon not reached yet)
 * cannot be judged.
 */
export function parseCutLmstat(text: string): LicenseInfo | null {
  // The last line is whatever the cut left of it.
  const { info, section } = scan(text.slice(0, text.lastIndexOf('\n') + 1));
  return section === 'features' ? { ...info, truncated: true } : null;
}

function scan(text: string): { info: LicenseInfo; section: Section } {
  const servers = new Map<string, Server>();
  // Keyed by the lmgrd whose status lists the daemon and its name: `-c port@a:port@b` prints one block
  // per server, and a daemon of the same name on each is two daemons with their own state.
  const vendors = new Map<string, Vendor>();
  let listHosts: string[] = [];
  const triads: string[][] = [];
  let vendorHost: string | undefined;
  const setVendor = (v: Vendor): void => {
    const server = vendorHost;
    vendors.set(`${server?.toLowerCase() ?? ''}\u0000${v.name}`, server === undefined ? v : { ...v, server });
  };
  const features = new Map<string, Feature>();
  const errors: string[] = [];
  let section: Section = 'none';
  // An uncounted feature's header has no in-use total, so its users below it are counted instead.
  let uncounted: Feature | null = null;

  const serverFor = (host: string): Server => {
    const key = host.toLowerCase();
    let s = servers.get(key);
    if (!s) {
      s = { host, up: false, master: false };
      servers.set(key, s);
    }
    return s;
  };
  const addError = (line: string): void => {
    const e = line.length > MAX_ERROR_CHARS ? `${line.slice(0, MAX_ERROR_CHARS - 1)}…` : line;
    if (errors.length < MAX_ERRORS && !errors.includes(e)) errors.push(e);
  };

  for (const raw of text.split(/\r\n|\r|\n/)) {
    if (raw.length > MAX_LINE_CHARS) continue;
    const line = raw.trim();
    if (line === '') continue;

    let m: RegExpMatchArray | null;
    if ((m = SERVER_LIST.exec(line))) {
      section = 'servers';
      listHosts = [];
      // Listed members start DOWN: one that prints no state line (or only an error) is not serving.
      for (const entry of (m[1] ?? '').split(/[,;\s]+/)) {
        const at = entry.lastIndexOf('@');
        if (at >= 0 && at < entry.length - 1) listHosts.push(serverFor(entry.slice(at + 1)).host);
      }
      if (listHosts.length > 1 && triads.length < MAX_TRIADS) triads.push(listHosts);
    } else if ((m = SERVER_STATE.exec(line))) {
      const s = serverFor(m[1]!);
      // Windows lmstat may print one server twice, "BVS15004: ... UP (MASTER)" then "bvs15004: ... UP":
      // the second spelling must not take MASTER away.
      const wasMaster = s.up && s.master;
      s.up = m[2]!.toUpperCase() === 'UP';
      s.master = s.up && (wasMaster || /\(MASTER\)/i.test(m[3] ?? ''));
    } else if (section !== 'vendors' && (m = SERVER_UNREACHABLE.exec(line))) {
      serverFor(m[1]!).up = false;
    } else if ((m = VENDOR_SECTION.exec(line))) {
      section = 'vendors';
      vendorHost = m[1] ?? listHosts[0];
    } else if (FEATURE_SECTION.test(line)) {
      section = 'features';
    } else if ((m = USERS_OF.exec(line))) {
      section = 'features';
      const feature = parseUsage(m[1]!, m[2] ?? '');
      uncounted = null;
      // A feature is listed once per lmstat run; a repeat (app1 lists feature42 twice, identically)
      // is the same pool again, so summing would double-count it.
      if (feature && !features.has(feature.name)) {
        features.set(feature.name, feature);
        if (feature.issued === null) uncounted = feature;
      }
    } else if (uncounted && USER_LINE.test(line)) {
      const n = USER_LICENSES.exec(line);
      uncounted.in_use += n ? Number(n[1]) : 1;
    } else if (section === 'vendors' && (m = VENDOR_STATE.exec(line))) {
      const up = m[2]!.toUpperCase() === 'UP';
      setVendor(up && m[3] ? { name: m[1]!, up, version: m[3] } : { name: m[1]!, up });
    } else if (section === 'vendors' && (m = VENDOR_OTHER.exec(line))) {
      setVendor({ name: m[1]!, up: false });
      addError(line);
    }

    if (ERROR_TEXT.test(line)) addError(line);
  }

  const info: LicenseInfo = { servers: [...servers.values()], vendors: [...vendors.values()], features: [...features.values()], errors };
  if (triads.length > 0) info.triads = triads;
  return { info, section };
}

/** Counts from the part after "Users of NAME:"; null when the line reports an error instead. */
function parseUsage(name: string, rest: string): Feature | null {
  const counted = COUNTED.exec(rest);
  if (counted) return { name, issued: Number(counted[1]), in_use: counted[2] === undefined ? 0 : Number(counted[2]) };
  if (UNCOUNTED.test(rest)) return { name, issued: null, in_use: 0 };
  return null;
}

/**
 * One lmstat run's verdict. `standby`: the guarded server is a healthy triad member that another
 * member, the MASTER, serves for: it must take no client, yet it is not down (Server.standby).
 */
export interface LmstatVerdict {
  ok: boolean;
  reason: string;
  standby?: boolean;
  /** With standby: the MASTER's host as lmstat prints it. */
  master?: string;
}

/**
 * The health verdict for one lmstat run. `localHost` is the lmgrd this sidecar guards: in a triad
 * every member prints the same status, so "some server is UP" would keep a dead member in rotation.
 * In a triad only the MASTER serves licenses, and only while 2 of the 3 members run and talk
 * (Revenera's License Administration Guide, "Overview of Three-Server Redundancy"): a member UP
 * without MASTER is a standby, and a triad without a MASTER serves nothing.
 */
export function lmstatHealthy(info: LicenseInfo, localHost?: string): LmstatVerdict {
  const up = info.servers.filter((s) => s.up);
  if (up.length === 0) {
    const why = info.errors[0] ?? (info.servers.length === 0 ? 'no license server status in lmstat output' : 'no license server UP');
    return { ok: false, reason: why };
  }

  let lmgrd: string;
  let local: Server | undefined;
  if (localHost !== undefined) {
    local = findHost(info.servers, localHost, (s) => s.host);
    if (!local) {
      const listed = info.servers.map((s) => s.host).join(', ');
      return { ok: false, reason: `expected local host ${localHost} among license servers, found ${listed}` };
    }
    if (!local.up) {
      const prefix = `${local.host.toLowerCase()}:`;
      const detail = info.errors.find((e) => e.toLowerCase().startsWith(prefix));
      return { ok: false, reason: `lmgrd on ${local.host} DOWN${detail ? `: ${detail.slice(prefix.length).trim()}` : ''}` };
    }
    lmgrd = local.master ? 'lmgrd UP (MASTER)' : 'lmgrd UP';
  } else if (info.servers.length === 1) {
    lmgrd = up[0]!.master ? 'lmgrd UP (MASTER)' : 'lmgrd UP';
  } else {
    const master = up.find((s) => s.master);
    lmgrd = `lmgrd UP ${up.length}/${info.servers.length}${master ? ` (MASTER ${master.host})` : ', no MASTER'}`;
  }
  const upCount = ` [${up.length}/${info.servers.length} servers UP]`;
  if (localHost !== undefined && info.servers.length > 1) lmgrd += upCount;

  const triad = triadOf(info, local);
  if (triad !== null) {
    const members = info.servers.filter((s) => triad.includes(s.host));
    const live = members.filter((s) => s.up).length;
    const master = members.find((s) => s.master);
    // A MASTER needs 2 of 3; with 2 UP and none MASTER the triad is electing one, and serves nothing meanwhile either.
    if (!master) {
      const reason = live < 2 ? `triad has no quorum: ${live}/${members.length} servers UP, no MASTER` : `triad has no MASTER: ${live}/${members.length} servers UP`;
      return { ok: false, reason };
    }
    // Before the vendor daemons: lmstat lists the MASTER's only, whose verdict is the MASTER's check.
    if (local !== undefined && master !== local) return { ok: true, standby: true, master: master.host, reason: `triad standby: ${master.host} is MASTER${upCount}` };
  }

  const vendors = localHost === undefined ? info.vendors : vendorsOf(info, localHost);
  if (vendors.length === 0) return { ok: false, reason: `${lmgrd}, but no vendor daemon listed` };
  const down = vendors.filter((v) => !v.up).map((v) => v.name);
  if (down.length > 0) {
    return { ok: false, reason: `vendor daemon${down.length > 1 ? 's' : ''} ${down.join(', ')} DOWN` };
  }

  const names = vendors.map((v) => v.name).join(', ');
  const n = info.features.length;
  return {
    ok: true,
    reason: `${lmgrd}, vendor${vendors.length > 1 ? 's' : ''} ${names} UP, ${n} feature${n === 1 ? '' : 's'}`,
  };
}

/**
 * The triad the verdict is about: the guarded server's, or without one the output's only triad
 * when it lists nothing else; null for a one-server license or `-c port@a:port@b` blocks.
 */
function triadOf(info: LicenseInfo, local: Server | undefined): string[] | null {
  const triads = info.triads ?? [];
  if (local !== undefined) return triads.find((t) => t.includes(local.host)) ?? null;
  return triads.length === 1 && triads[0]!.length === info.servers.length ? triads[0]! : null;
}

/**
 * The vendor daemons that serve `host`: those lmstat listed on it. A triad prints its vendor status
 * once, on the master, for all three members, so when the output holds one server's vendor status
 * only, it is every listed member's; with several (`-c port@a:port@b`) another server's daemons are
 * not this one's.
 */
function vendorsOf(info: LicenseInfo, host: string): LicenseInfo['vendors'] {
  const listedOn = new Set(info.vendors.map((v) => v.server?.toLowerCase()));
  const on = findHost([...listedOn].filter((s): s is string => s !== undefined), host, (s) => s);
  if (on !== undefined) return info.vendors.filter((v) => v.server?.toLowerCase() === on);
  return listedOn.size <= 1 ? info.vendors : [];
}
