/**
 * systemd/licgate.service restricts socket address families (RestrictAddressFamilies): systemd
 * installs a seccomp filter under which socket() of any other family fails with EAFNOSUPPORT.
 * systemd is not PID 1 here, so `af-restrict` installs the same filter and execs the program.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { lmstatFixturePath } from '../helpers/lmstat-fixtures.js';
import { notifySocket } from '../helpers/notify-socket.js';
import { startProxy, stopAll } from '../helpers/proxy-harness.js';
import { requireTools } from '../helpers/require-tools.js';
import { waitFor } from '../helpers/wait-for.js';

const scratch = mkdtempSync(join(tmpdir(), 'licgate-sandbox-'));
const wrapper = join(scratch, 'af-restrict');
const lmutil = join(scratch, 'lmutil');
const UNIT = fileURLToPath(new URL('../../systemd/licgate.service', import.meta.url));
const FAMILY: Record<string, number> = { AF_UNIX: 1, AF_INET: 2, AF_INET6: 10, AF_NETLINK: 16, AF_PACKET: 17 };

// af-restrict FAMILIES CMD...: socket() of a family not in the comma-separated FAMILIES fails with EAFNOSUPPORT.
const C = String.raw`
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv) {
  if (argc < 3) return 2;
  int fam[16], n = 0;
  for (char *p = argv[1]; *p && n < 16; ) { fam[n++] = (int)strtol(p, &p, 10); if (*p == ',') p++; }
  struct sock_filter f[32];
  int i = 0;
  f[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
  f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
  f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  f[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
  f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socket, 1, 0);
  f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  f[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]));
  for (int k = 0; k < n; k++) f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, fam[k], n - k, 0);
  f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EAFNOSUPPORT & SECCOMP_RET_DATA));
  f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  struct sock_fprog prog = { .len = (unsigned short)i, .filter = f };
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) { perror("seccomp"); return 1; }
  execvp(argv[2], argv + 2);
  perror("execvp");
  return 127;
}
`;

/** The families the shipped unit allows, as af-restrict's first argument. */
function unitFamilies(): string {
  const line = readFileSync(UNIT, 'utf8').split('\n').find((l) => l.startsWith('RestrictAddressFamilies='));
  if (!line) throw new Error(`no RestrictAddressFamilies= in ${UNIT}`);
  return line.slice('RestrictAddressFamilies='.length).trim().split(/\s+/).map((name) => {
    if (!(name in FAMILY)) throw new Error(`unknown family ${name} in ${UNIT}`);
    return FAMILY[name];
  }).join(',');
}

beforeAll(() => {
  if (process.arch !== 'x64') throw new Error('af-restrict filters x86-64 system calls only');
  writeFileSync(`${wrapper}.c`, C);
  const cc = spawnSync('cc', ['-O2', '-o', wrapper, `${wrapper}.c`], { encoding: 'utf8' });
  // CI installs gcc (.ci/run); without a C compiler this fails rather than skips.
  if (cc.status !== 0) throw new Error(`cc failed (${cc.error?.message ?? cc.status}): ${cc.stderr}`);
  // A stand-in lmutil printing a real capture (a FlexLM triad, host2 MASTER, VENDOR1 UP).
  writeFileSync(lmutil, `#!/bin/sh\ncat '${lmstatFixturePath('lmstat_app1.txt')}'\n`, { mode: 0o755 });
});
afterEach(() => stopAll());
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** What Node can do under af-restrict FAMILIES: listen on TCP, read the interface addresses. */
function probe(families: string): string {
  const r = spawnSync(wrapper, [families, process.execPath, '-e', `
    const s = require('node:net').createServer().listen(0, '127.0.0.1', () => { console.log('inet ok'); s.close(); });
    try { require('node:os').networkInterfaces(); console.log('interfaces ok'); } catch (e) { console.log('interfaces: ' + e.message); }
  `], { encoding: 'utf8' });
  return r.stdout + r.stderr;
}

describe('systemd/licgate.service: socket address families', () => {
  it('allow what licgate needs: TCP, and the interface addresses an lmstat check identifies this host by', () => {
    expect(probe(unitFamilies())).toBe('interfaces ok\ninet ok\n');
    // The filter is real: without AF_NETLINK the addresses cannot be read.
    expect(probe('1,2,10')).toMatch(/^interfaces: .*uv_interface_addresses.*\ninet ok\n$/);
  });

  it('an lmstat check still passes where a sandbox refuses netlink (this host known by its name only)', async () => {
    const p = await startProxy(`status: { listen: 127.0.0.1:0, backend: local }
backends:
  - name: local
    check: { type: exec, argv: [${JSON.stringify(lmutil)}, lmstat, -a, -c, "{port}@{host}"], parse: lmstat, inter: 200ms, rise: 1, fall: 1, timeout: 5s }
    servers:
      - { name: this-host, address: "host2.domain.net:27002" }
`, { waitReady: false, wrapper: [wrapper, '1,2,10'] });
    const s = await waitFor(async () => (await p.server('local', 'this-host')).last_check, { timeoutMs: 10_000, what: 'a first check' });
    expect(s, JSON.stringify(s)).toMatchObject({ ok: true });
  });

  it('let systemd-notify reach NOTIFY_SOCKET (Type=notify: licgate is ready when it says so)', async () => {
    requireTools(['systemd-notify']);
    const sock = await notifySocket(scratch);
    try {
      const send = (families: string): string => {
        const r = spawnSync(wrapper, [families, 'systemd-notify', '--ready'], { encoding: 'utf8', env: { ...process.env, NOTIFY_SOCKET: sock.path }, timeout: 10_000 });
        return `${r.status} ${r.stderr}`;
      };
      expect(send(unitFamilies())).toBe('0 ');
      await waitFor(() => sock.messages.length > 0, { timeoutMs: 5000, what: 'the message received' });
      expect(sock.messages).toEqual([['READY=1']]);
      // The filter is real: without AF_UNIX the message cannot go.
      expect(send('2,10,16')).toMatch(/^1 .*Address family not supported/);
    } finally {
      await sock.close();
    }
  });
});
