/**
 * notifySocket — a stand-in for systemd's notification socket (NOTIFY_SOCKET), recording what a
 * service sends with systemd-notify.
 *
 *   const sock = await notifySocket(dir);
 *   spawn(cli, args, { env: { ...process.env, NOTIFY_SOCKET: sock.path } });
 *   await waitFor(() => sock.messages.some((m) => m.includes('READY=1')), ...);
 *
 * Node cannot bind an AF_UNIX datagram socket, so a small C receiver (built with cc, as CI installs
 * gcc) binds it and prints each datagram as one line. systemd-notify waits until its message has
 * been processed: it sends BARRIER=1 with a pipe's write end and waits for that end to close, so the
 * receiver closes every descriptor it receives, as systemd does.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from './wait-for.js';

// notify-receiver PATH: binds PATH, prints each datagram on a line of its own ("\n" inside it as
// "\\n") and flushes, closes the descriptors that come with it.
const C = String.raw`
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
int main(int argc, char **argv) {
  if (argc != 2) return 2;
  int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un a = { .sun_family = AF_UNIX };
  if (s < 0 || strlen(argv[1]) >= sizeof a.sun_path) { perror("socket"); return 1; }
  strcpy(a.sun_path, argv[1]);
  if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); return 1; }
  printf("LISTENING\n");
  fflush(stdout);
  for (;;) {
    char buf[4096], ctl[CMSG_SPACE(sizeof(int) * 16)];
    struct iovec v = { buf, sizeof buf - 1 };
    struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl };
    ssize_t n = recvmsg(s, &m, MSG_CMSG_CLOEXEC);
    if (n < 0) { perror("recvmsg"); return 1; }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      int *fds = (int *)CMSG_DATA(c);
      for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) close(fds[i]);
    }
    for (ssize_t i = 0; i < n; i++) {
      if (buf[i] == '\n') fputs("\\n", stdout);
      else putchar(buf[i]);
    }
    putchar('\n');
    fflush(stdout);
  }
}
`;

export interface NotifySocket {
  /** What to set NOTIFY_SOCKET to. */
  path: string;
  /** Each datagram received, as its lines (`READY=1`, `STATUS=...`), BARRIER=1 ones left out. */
  messages: string[][];
  close(): Promise<void>;
}

/** Builds the receiver in `dir` (once per dir) and binds `dir`/notify. */
export async function notifySocket(dir: string): Promise<NotifySocket> {
  const bin = join(dir, 'notify-receiver');
  if (!existsSync(bin)) {
    writeFileSync(`${bin}.c`, C);
    const cc = spawnSync('cc', ['-O2', '-o', bin, `${bin}.c`], { encoding: 'utf8' });
    // CI installs gcc (.ci/run); without a C compiler this fails rather than skips.
    if (cc.status !== 0) throw new Error(`cc failed (${cc.error?.message ?? cc.status}): ${cc.stderr}`);
  }
  const path = join(dir, `notify-${Date.now()}-${Math.random().toString(36).slice(2)}`);
  const child: ChildProcess = spawn(bin, [path], { stdio: ['ignore', 'pipe', 'pipe'] });
  const messages: string[][] = [];
  let listening = false;
  let buf = '';
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line === 'LISTENING' && !listening) listening = true;
      else {
        const fields = line.split('\\n').filter(Boolean);
        if (!fields.includes('BARRIER=1')) messages.push(fields);
      }
    }
  });
  let exited = false;
  child.on('exit', () => (exited = true));
  await waitFor(() => {
    if (exited) throw new Error(`notify-receiver exited: ${stderr}`);
    return listening;
  }, { timeoutMs: 5000, what: `notify-receiver bound to ${path} (stderr: ${stderr})` });
  return {
    path,
    messages,
    async close() {
      if (exited) return;
      const gone = once(child, 'exit');
      child.kill('SIGKILL');
      await gone;
    },
  };
}
