import type { Config } from './config/schema.js';
import type { Model } from './model/model.js';
import type { Frontend } from './proxy/frontend.js';

export interface HealthVerdict {
  ok: boolean;
  reason: string;
  backends: Record<string, { running: boolean; tier: string; servers_up: string }>;
}

/** What responders and observers may read of a running daemon (they never change it directly). */
export interface DaemonView {
  readonly version: string;
  readonly cfg: Config;
  readonly model: Model;
  readonly frontends: readonly Frontend[];
  /** performance.now() time. */
  readonly startedAt: number;
  readonly shuttingDown: boolean;
  /** The `peers` section's state (null status: none configured). Optional: tests build views without it. */
  readonly peers?: { status(): object | null };
  healthVerdict(): HealthVerdict;
  readiness(): { ready: boolean; reason: string };
}
