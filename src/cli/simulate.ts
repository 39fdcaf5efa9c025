import { parseHostPort } from '../config/address.js';
import { UsageError } from '../errors.js';
import { LicenseSimulator } from '../simulator/license-simulator.js';
import { parse, type Command } from './command.js';
import { help } from './validate.js';

export const simulate: Command = {
  name: 'simulate',
  summary: 'run a simulated license server (line protocol: STATUS, HELLO, CHECKOUT f n, CHECKIN h)',
  usage: 'licgate simulate --listen ADDR [--name N] [--tokens N]',
  async run(args) {
    const { values } = parse(args, { listen: { type: 'string' }, name: { type: 'string' }, tokens: { type: 'string' } });
    if (values.help) return help(this);
    const listen = parseHostPort(values.listen ?? '127.0.0.1:27000', { allowPortZero: true });
    if (typeof listen === 'string') throw new UsageError(`--listen: ${listen}`);
    const tokens = Number(values.tokens ?? 100);
    if (!Number.isInteger(tokens) || tokens < 0) throw new UsageError(`--tokens: expected a whole number, found "${values.tokens}"`);
    const sim = new LicenseSimulator({ listen, name: values.name ?? `sim-${listen.port}`, tokens });
    const addr = await sim.listen();
    // Tests and the demo read this line to learn the port when --listen asked for port 0.
    process.stdout.write(`simulator ${sim.opts.name} listening on ${addr.address}:${addr.port}\n`);
    return new Promise((resolve) => {
      const stop = (): void => void sim.close().then(() => resolve(0));
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
  },
};
