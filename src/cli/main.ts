// Loaded by licgate.cjs (the npm bin), which sizes libuv's thread pool first: see there.
import { LicgateError, UsageError } from '../errors.js';
import { VERSION } from '../version.js';
import type { Command } from './command.js';

// Each command is imported only when it runs: `licgate check` is called by keepalived every second,
// and importing the daemon (pino, prom-client, undici, yaml) just to send one GET cost ~300 ms of CPU.
const COMMANDS: Record<string, () => Promise<Command>> = {
  run: async () => (await import('./run.js')).run,
  validate: async () => (await import('./validate.js')).validate,
  reload: async () => (await import('./reload.js')).reload,
  check: async () => (await import('./check.js')).check,
  demo: async () => (await import('./demo.js')).demo,
  simulate: async () => (await import('./simulate.js')).simulate,
  ctl: async () => (await import('./ctl.js')).ctl,
};

async function usage(): Promise<string> {
  const all = await Promise.all(Object.values(COMMANDS).map((load) => load()));
  const w = Math.max(...all.map((c) => c.name.length));
  return `licgate ${VERSION} — load balancer and health sidecar for license servers\n\nUsage: licgate <command> [options]\n\n${all.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`).join('\n')}\n\nlicgate <command> --help shows a command's options.\n`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(await usage());
    return 0;
  }
  if (!name) {
    process.stderr.write(`licgate: expected a command\n\n${await usage()}`);
    return 2;
  }
  if (name === '--version' || name === '-V') {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!load) {
    process.stderr.write(`licgate: unknown command "${name}"\n\n${await usage()}`);
    return 2;
  }
  let cmd;
  try {
    cmd = await load();
  } catch (e) {
    // A command's modules check the runtime they need as they load (src/io/tcp-handle.ts).
    if (e instanceof LicgateError) {
      process.stderr.write(`licgate: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
  try {
    return await cmd.run(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`licgate ${cmd.name}: ${e.message}\nusage: ${cmd.usage}\n`);
      return 2;
    }
    if (e instanceof LicgateError) {
      process.stderr.write(`licgate ${cmd.name}: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Every command resolves only when it is done, so leftover idle handles must not keep us alive.
    setImmediate(() => process.exit(code));
  },
  (e: unknown) => {
    process.stderr.write(`licgate: internal error: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(70);
  },
);
