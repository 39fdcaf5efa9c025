#!/usr/bin/env node
import { LicgateError, UsageError } from '../errors.js';
import { VERSION } from '../version.js';
import { check } from './check.js';
import type { Command } from './command.js';
import { ctl } from './ctl.js';
import { demo } from './demo.js';
import { run } from './run.js';
import { simulate } from './simulate.js';
import { validate } from './validate.js';

const COMMANDS: Command[] = [run, validate, check, demo, simulate, ctl];

function usage(): string {
  const w = Math.max(...COMMANDS.map((c) => c.name.length));
  return `licgate ${VERSION} — load balancer and health sidecar for license servers\n\nUsage: licgate <command> [options]\n\n${COMMANDS.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`).join('\n')}\n\nlicgate <command> --help shows a command's options.\n`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name ? 0 : 2;
  }
  if (name === '--version' || name === '-V') {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const cmd = COMMANDS.find((c) => c.name === name);
  if (!cmd) {
    process.stderr.write(`licgate: unknown command "${name}"\n\n${usage()}`);
    return 2;
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
