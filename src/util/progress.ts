// One progress display for training and evaluation: a bar on a TTY that always fits the terminal
// (80 columns when the width is unknown), plain lines otherwise (logs, CI).
import cliProgress from 'cli-progress';

/** "1m05s", "42s", "1h02m". */
export function formatDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '-';
  const t = Math.round(s);
  if (t < 60) return `${t}s`;
  if (t < 3600) return `${Math.floor(t / 60)}m${String(t % 60).padStart(2, '0')}s`;
  return `${Math.floor(t / 3600)}h${String(Math.floor((t % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * One bar line of at most `width` columns: `label [####----] value/total | info | ETA 1m05s`. The
 * bar takes the room that is left (at least 5 columns); when even that does not fit, the info is
 * cut. An empty info leaves no empty field.
 */
export function formatProgressLine(label: string, value: number, total: number, info: string, etaSeconds: number | null, width: number): string {
  const count = `${value}/${total}`;
  const eta = etaSeconds === null ? '' : ` | ETA ${formatDuration(etaSeconds)}`;
  let tail = `${info ? ` | ${info}` : ''}${eta}`;
  const fixed = label.length + 1 + 2 + 1 + count.length; // "label [" + "] " + count
  let room = width - fixed - tail.length;
  if (room < 5) {
    const cut = Math.max(0, tail.length - (5 - room));
    tail = tail.slice(0, cut);
    room = Math.max(5, width - fixed - tail.length);
  }
  const filled = total > 0 ? Math.round((room * Math.min(value, total)) / total) : 0;
  return `${label} [${'#'.repeat(filled)}${'-'.repeat(room - filled)}] ${count}${tail}`.slice(0, width);
}

export interface Progress {
  /** One more item done (or `value` given), with a short status text. */
  tick(info?: string, value?: number): void;
  stop(): void;
}

/**
 * A progress display for `total` items of which `start` are done: a bar when `bar` (default: the
 * stream is a TTY), else one plain line per tick ("label 3/10 info"), or nothing with quiet.
 */
export function startProgress(label: string, total: number, start = 0, o: { bar?: boolean; quiet?: boolean; stream?: NodeJS.WritableStream } = {}): Progress {
  const stream = o.stream ?? process.stderr;
  const useBar = o.bar ?? Boolean((stream as NodeJS.WriteStream).isTTY);
  let value = start;
  if (useBar) {
    const width = (): number => Math.max(40, ((stream as NodeJS.WriteStream).columns ?? 80) - 1);
    const bar = new cliProgress.SingleBar({
      hideCursor: true, stream, etaBuffer: 20,
      format: (opts, params, payload: { info?: string }) =>
        formatProgressLine(label, params.value, params.total, payload.info ?? '', params.value >= params.total ? 0 : params.eta, width()),
    });
    bar.start(total, start, { info: '' });
    return {
      tick: (info, v) => {
        value = v ?? value + 1;
        bar.update(value, { info: info ?? '' });
      },
      stop: () => bar.stop(),
    };
  }
  return {
    tick: (info, v) => {
      value = v ?? value + 1;
      if (!o.quiet) stream.write(`${label} ${value}/${total}${info ? ` ${info}` : ''}\n`);
    },
    stop: () => {},
  };
}

/** Tokens per second over the last `window` steps (what the bar shows; the summary has the run's mean). */
export class MovingRate {
  private readonly items: Array<[number, number]> = [];
  constructor(private readonly window = 10) {}
  add(amount: number, seconds: number): number {
    this.items.push([amount, seconds]);
    if (this.items.length > this.window) this.items.shift();
    const a = this.items.reduce((s, x) => s + x[0], 0);
    const t = this.items.reduce((s, x) => s + x[1], 0);
    return t > 0 ? a / t : 0;
  }
}
