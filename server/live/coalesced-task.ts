// A task that many notifications ask for but that only needs to run once for all of them:
// asked while it runs, it runs once more afterwards; asked ten times meanwhile, still once.
// Never a queue per request. A failed run is retried after a pause, since the request that
// asked for it may be the last one to come.

export class CoalescedTask {
  private running = false;
  private again = false;
  private retry: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly work: () => Promise<void>,
    private readonly onError: (error: unknown) => void,
    private readonly retryMs = 1_000,
  ) {}

  request(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    void this.loop();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retry);
  }

  private async loop(): Promise<void> {
    do {
      this.again = false;
      try {
        await this.work();
      } catch (error) {
        this.onError(error);
        clearTimeout(this.retry);
        if (!this.stopped) this.retry = setTimeout(() => this.request(), this.retryMs);
      }
    } while (this.again && !this.stopped);
    // In the same synchronous run as the check above: a request cannot fall between the two.
    this.running = false;
  }
}
