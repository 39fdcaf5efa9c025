/** Smaller than a step of the wall clock (ntpd steps from 128 ms; below, both clocks are slewed alike). */
const STEP_MS = 100;
/**
 * Date.now() minus performance.now(). Date.now() counts whole milliseconds and performance.now()
 * does not: taken anew at each call, their difference wobbled within a millisecond, and a moment
 * that had not changed (`since`, the state-since metric) read another value at every scrape.
 */
let wallOffset = Date.now() - performance.now();

/**
 * Moments licgate keeps are performance.now() times: NTP steps and a live-migrated VM's clock sync
 * move Date.now(), and an age or an expiry computed from it would jump by the step. One shown to
 * people is the wall-clock time that long before now, so "since" and "ago" stay true after a step.
 */
export function wallTimeOf(monotonicMs: number): number {
  const offset = Date.now() - performance.now();
  if (Math.abs(offset - wallOffset) > STEP_MS) wallOffset = offset;
  return monotonicMs + wallOffset;
}
