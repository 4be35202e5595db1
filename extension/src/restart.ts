/**
 * When to restart a crashed server: after 1, 2, 4, 8, 16 seconds for successive crashes,
 * forgetting crashes once the server has stayed up for a while, and giving up after too
 * many in a row (a crash loop is reported instead of retried forever).
 */
export class RestartPolicy {
  private crashes = 0;
  private lastStart = 0;

  constructor(
    private readonly baseMs = 1000,
    private readonly maxCrashes = 5,
    private readonly stableMs = 3 * 60 * 1000,
  ) {}

  /** Call when the server (re)starts. */
  started(now: number): void {
    this.lastStart = now;
  }

  /** Call when the server died unexpectedly; returns the delay before restarting, or
   * undefined to give up. */
  crashed(now: number): number | undefined {
    if (this.lastStart && now - this.lastStart >= this.stableMs) this.crashes = 0;
    this.crashes += 1;
    if (this.crashes > this.maxCrashes) return undefined;
    return this.baseMs * 2 ** (this.crashes - 1);
  }

  reset(): void {
    this.crashes = 0;
  }
}
