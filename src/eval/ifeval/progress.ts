// A progress display for generation loops: the shared bar (src/util/progress.ts) on a TTY, plain
// lines through `write` otherwise (the demo passes a writer that thins them out).
import { startProgress, type Progress as Bar } from '../../util/progress.js';

export class Progress {
  private bar: Bar | null = null;
  private done: number;
  private readonly t0 = performance.now();

  constructor(private readonly label: string, private readonly total: number, start = 0, tty = Boolean(process.stderr.isTTY), private readonly write: (s: string) => void = (s) => process.stderr.write(s)) {
    this.done = start;
    if (tty) this.bar = startProgress(label, total, start, { bar: true });
    else if (start > 0) this.write(`${label}: ${start}/${total} already done (resumed)\n`);
  }

  tick(info = ''): void {
    this.done++;
    if (this.bar) this.bar.tick(info, this.done);
    else {
      const s = ((performance.now() - this.t0) / 1000).toFixed(1);
      this.write(`${this.label}: ${this.done}/${this.total}${info ? ' | ' + info : ''} | ${s}s\n`);
    }
  }

  stop(): void {
    this.bar?.stop();
  }
}
