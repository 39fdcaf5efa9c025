/**
 * Moments licgate keeps are performance.now() times: NTP steps and a live-migrated VM's clock sync
 * move Date.now(), and an age or an expiry computed from it would jump by the step. One shown to
 * people is the wall-clock time that long before now, so "since" and "ago" stay true after a step.
 */
export function wallTimeOf(monotonicMs: number): number {
  return Date.now() - (performance.now() - monotonicMs);
}
