import type { InitState } from '../config/schema.js';

/**
 * HAProxy's check counter (src/check.c): health runs 0..rise+fall-1 and the server is UP while
 * health >= rise. A success adds 1 and, on reaching rise, jumps to the top; a failure takes 1 off
 * while above rise, and drops to 0 (DOWN) otherwise. Starting at `rise` makes the first check decide.
 * The other starts are HAProxy 3.1's init-state: fully-up at the top (`fall` failures to DOWN),
 * down one short of rise (one success to UP), fully-down at 0 (`rise` successes).
 */
export class HealthState {
  health: number;

  constructor(readonly rise: number, readonly fall: number, start: InitState = 'up') {
    this.health = 0;
    this.restart(start);
  }

  /** Health as at a start in `start` (init-state); the caller reports the change, if any. */
  restart(start: InitState): void {
    this.health = start === 'up' ? this.rise : start === 'fully-up' ? this.max : start === 'down' ? this.rise - 1 : 0;
  }

  get max(): number {
    return this.rise + this.fall - 1;
  }

  get up(): boolean {
    return this.health >= this.rise;
  }

  /** 'up' and 'down' are the settled ends; anything between runs at fastinter. */
  get phase(): 'up' | 'down' | 'transitional' {
    if (this.health >= this.max) return 'up';
    if (this.health === 0) return 'down';
    return 'transitional';
  }

  /** Returns true when the UP/DOWN verdict changed. */
  success(): boolean {
    const was = this.up;
    if (this.health < this.max) this.health++;
    if (this.health >= this.rise) this.health = this.max;
    return was !== this.up;
  }

  failure(): boolean {
    const was = this.up;
    if (this.health > this.rise) this.health--;
    else this.health = 0;
    return was !== this.up;
  }

  /** Passive health (observe): DOWN now, active checks must bring it back through `rise`. */
  forceDown(): boolean {
    const was = this.up;
    this.health = 0;
    return was;
  }

  /** Exactly as HAProxy's stats page: `UP`, `UP 1/3` (failures left), `DOWN`, `DOWN 1/2` (successes so far). */
  get text(): string {
    if (this.up) return this.health >= this.max ? 'UP' : `UP ${this.health - this.rise + 1}/${this.fall}`;
    return this.health === 0 ? 'DOWN' : `DOWN ${this.health}/${this.rise}`;
  }
}
