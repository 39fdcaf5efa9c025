import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../errors.js';

export interface Command {
  name: string;
  summary: string;
  usage: string;
  /** Resolves to the exit code; long-running commands resolve when they stop. */
  run(args: string[]): Promise<number>;
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** parseArgs with errors turned into UsageError (exit 2 with the command's help). */
export function parse<O extends Options>(args: string[], options: O, allowPositionals = false) {
  try {
    return parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

export function required(value: string | undefined, flag: string): string {
  if (!value) throw new UsageError(`missing ${flag}`);
  return value;
}

export function help(cmd: Command): number {
  process.stdout.write(`${cmd.usage}\n\n${cmd.summary}\n`);
  return 0;
}

/**
 * node:http's parse error for a port that does not speak HTTP (a license server's, the STATUS
 * port's), said as what it answered: "Parse Error: Expected HTTP/" names neither. Null for others.
 */
export function notHttpAnswer(e: Error): string | null {
  const { code, rawPacket } = e as NodeJS.ErrnoException & { rawPacket?: Buffer };
  if (!code?.startsWith('HPE_')) return null;
  const line = (rawPacket?.toString('latin1') ?? '').split(/\r?\n/, 1)[0]!;
  return `answered, but not in HTTP (found ${JSON.stringify(line.length > 80 ? `${line.slice(0, 80)}…` : line)})`;
}
