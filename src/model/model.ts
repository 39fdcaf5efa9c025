import type { Config } from '../config/schema.js';
import { Backend } from './backend.js';
import { ModelEvents } from './events.js';

/** Every backend of a running config, and the event bus their state changes go out on. */
export class Model {
  readonly events = new ModelEvents();
  readonly backends = new Map<string, Backend>();
  /**
   * Backends reloads removed, by name, whose sessions were still open at the last reload: one added
   * back takes them over (Backend.adoptSessions). Left at the reload that finds them ended.
   */
  readonly removed = new Map<string, Backend>();

  constructor(cfg: Config) {
    for (const b of cfg.backends) {
      const stepPorts = cfg.frontends.flatMap((f) => (f.backend === b.name && f.server_port !== null ? [f.server_port] : []));
      this.backends.set(b.name, new Backend(b, this.events, stepPorts));
    }
  }

  backend(name: string): Backend | undefined {
    return this.backends.get(name);
  }
}
