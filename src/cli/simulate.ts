import { formatBound, parseHostPort } from '../config/address.js';
import { ListenError, UsageError } from '../errors.js';
import { FlexlmSimulator } from '../simulator/flexlm-simulator.js';
import { LicenseSimulator } from '../simulator/license-simulator.js';
import { help, parse, required, type Command } from './command.js';

export const simulate: Command = {
  name: 'simulate',
  summary: 'run a simulated license server (line protocol: STATUS, HELLO, CHECKOUT f n, CHECKIN h)',
  usage: 'licgate simulate --listen ADDR [--name N] [--tokens N] [--flexlm --vendor-port N]',
  async run(args) {
    const { values } = parse(args, { listen: { type: 'string' }, name: { type: 'string' }, tokens: { type: 'string' }, flexlm: { type: 'boolean' }, 'vendor-port': { type: 'string' } });
    if (values.help) return help(this);
    // No default port: 27000 is the real lmgrd's, so a simulator must be told where to listen.
    const listenText = required(values.listen, '--listen ADDR');
    const listen = parseHostPort(listenText, { allowPortZero: true });
    if (typeof listen === 'string') throw new UsageError(`--listen: ${listen}`);
    // Number('') is 0: an empty --tokens is a mistake, not a simulator with no licenses.
    const tokens = values.tokens === '' ? NaN : Number(values.tokens ?? 100);
    if (!Number.isInteger(tokens) || tokens < 0) throw new UsageError(`--tokens: expected a whole number, found "${values.tokens}"`);
    const vendorPort = readVendorPort(values.flexlm === true, values['vendor-port']);
    const name = values.name ?? `sim-${listen.port}`;
    const sim = vendorPort === null ? new LicenseSimulator({ listen, name, tokens }) : new FlexlmSimulator({ listen, name, tokens, vendorPort });
    const addr = await sim.listen().catch((e: NodeJS.ErrnoException) => {
      throw new ListenError(`simulator ${name}`, `${listenText}${vendorPort === null ? '' : ` (vendor port ${vendorPort})`}`, e);
    });
    // Tests and the demo read these lines to learn the ports when they asked for port 0.
    if (sim instanceof FlexlmSimulator) process.stdout.write(`simulator ${name} vendor daemon on ${formatBound({ address: addr.address, port: sim.vendorAddress().port })}\n`);
    process.stdout.write(`simulator ${name} listening on ${formatBound(addr)}\n`);
    return new Promise((resolve) => {
      const stop = (): void => void sim.close().then(() => resolve(0));
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
  },
};

/** FlexLM mode needs the vendor daemon's port, and the port means nothing without FlexLM mode. */
function readVendorPort(flexlm: boolean, text: string | undefined): number | null {
  if (!flexlm) {
    if (text !== undefined) throw new UsageError('--vendor-port: only with --flexlm');
    return null;
  }
  if (text === undefined) throw new UsageError('--flexlm: expected --vendor-port N (the vendor daemon port, 0-65535)');
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--vendor-port: expected a port 0-65535, found "${text}"`);
  return port;
}
