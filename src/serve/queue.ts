// The server's request queue: one generation at a time (the kernels already use every core), the
// others wait in arrival order. The queue is bounded so an overloaded server answers 429 at once
// instead of holding connections for minutes; a request whose client goes away leaves the queue.

export class QueueFullError extends Error {
  constructor(readonly waiting: number) {
    super(`the server is busy: ${waiting} requests are already waiting; retry later`);
  }
}

export class CancelledError extends Error {
  constructor() {
    super('the client closed the connection');
  }
}

interface Waiting {
  start: () => void;
  cancel: () => void;
}

export class RequestQueue {
  private readonly waiting: Waiting[] = [];
  private busy = false;
  private idleWaiters: (() => void)[] = [];

  /** `maxWaiting`: how many requests may wait behind the running one. */
  constructor(readonly maxWaiting: number) {}

  get running(): number {
    return this.busy ? 1 : 0;
  }

  get waitingCount(): number {
    return this.waiting.length;
  }

  /**
   * Runs `task` once every request queued before it has finished. Throws QueueFullError at once when
   * `maxWaiting` requests are already waiting; rejects with CancelledError when `signal` aborts
   * while it waits.
   */
  run<T>(task: () => Promise<T>, signal: AbortSignal): Promise<T> {
    if (signal.aborted) return Promise.reject(new CancelledError());
    if (!this.busy) return this.execute(task);
    if (this.waiting.length >= this.maxWaiting) return Promise.reject(new QueueFullError(this.waiting.length));
    return new Promise<T>((resolve, reject) => {
      const entry: Waiting = {
        start: () => {
          signal.removeEventListener('abort', onAbort);
          this.execute(task).then(resolve, reject);
        },
        cancel: () => reject(new CancelledError()),
      };
      const onAbort = (): void => {
        const i = this.waiting.indexOf(entry);
        if (i >= 0) {
          this.waiting.splice(i, 1);
          entry.cancel();
        }
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(entry);
    });
  }

  /** Resolves when nothing runs and nothing waits. */
  idle(): Promise<void> {
    if (!this.busy && this.waiting.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private async execute<T>(task: () => Promise<T>): Promise<T> {
    this.busy = true;
    try {
      return await task();
    } finally {
      this.busy = false;
      const next = this.waiting.shift();
      if (next) next.start();
      else {
        const waiters = this.idleWaiters;
        this.idleWaiters = [];
        for (const w of waiters) w();
      }
    }
  }
}
