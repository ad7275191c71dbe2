// A progress display: a cli-progress bar on a TTY, plain lines otherwise (logs, CI).
import cliProgress from 'cli-progress';

export class Progress {
  private bar: cliProgress.SingleBar | null = null;
  private done: number;
  private readonly t0 = performance.now();

  constructor(private readonly label: string, private readonly total: number, start = 0, tty = Boolean(process.stderr.isTTY), private readonly write: (s: string) => void = (s) => process.stderr.write(s)) {
    this.done = start;
    if (tty) {
      this.bar = new cliProgress.SingleBar(
        { format: `${label} [{bar}] {value}/{total} | {info} | ETA {eta_formatted}`, hideCursor: true, stream: process.stderr },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(total, start, { info: '' });
    } else if (start > 0) {
      this.write(`${label}: ${start}/${total} already done (resumed)\n`);
    }
  }

  tick(info = ''): void {
    this.done++;
    if (this.bar) this.bar.update(this.done, { info });
    else {
      const s = ((performance.now() - this.t0) / 1000).toFixed(1);
      this.write(`${this.label}: ${this.done}/${this.total}${info ? ' | ' + info : ''} | ${s}s\n`);
    }
  }

  stop(): void {
    this.bar?.stop();
  }
}
