// A minimal dependency-free SVG writer for `mixtune demo` and the studies: a line plot of
// training-loss curves (one line per configuration, optionally smoothed) beside a grouped bar chart
// of accuracies (one bar per configuration in each group, with ± std whiskers when given). Written
// by hand because the figure is small and fixed, and a plotting library would pull in a browser
// or canvas stack.

export interface LineSeries {
  name: string;
  values: number[];
}

export interface BarSeries {
  name: string;
  /** One value per group, in [0, 1]. */
  values: number[];
  /** Optional ± error per group. */
  err?: number[];
}

export interface LossAccuracyPlot {
  title: string;
  lossTitle?: string;
  barTitle?: string;
  /** Top of the bar axis (default: the largest value + error rounded up to a tenth, at most 1). */
  barMax?: number;
  losses: LineSeries[];
  groups: string[];
  bars: BarSeries[];
  /** Moving-average window for the loss curves (1 = raw). */
  smooth?: number;
  /** Logarithmic loss axis (losses must be > 0). */
  logY?: boolean;
}

const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];

export function colorOf(i: number): string {
  return PALETTE[i % PALETTE.length]!;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function f(x: number): string {
  return Number.isFinite(x) ? (Math.round(x * 10) / 10).toString() : '0';
}

/** Trailing moving average (window w). */
export function movingAverage(v: readonly number[], w: number): number[] {
  if (w <= 1) return [...v];
  const out: number[] = [];
  let sum = 0;
  for (let i = 0; i < v.length; i++) {
    sum += v[i]!;
    if (i >= w) sum -= v[i - w]!;
    out.push(sum / Math.min(i + 1, w));
  }
  return out;
}

/** "Nice" tick values covering [lo, hi]. */
function ticks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-9; t += step) out.push(Math.round(t / step) * step);
  return out;
}

function label(t: number): string {
  return Math.abs(t) >= 100 ? t.toFixed(0) : Number(t.toPrecision(3)).toString();
}

/** The whole figure as an SVG document. */
export function lossAccuracySvg(p: LossAccuracyPlot): string {
  const W = 1100;
  // the legend flows over as many rows as the names need (width estimated at 7 px per character)
  const names = p.bars.length ? p.bars.map((b) => b.name) : p.losses.map((l) => l.name);
  const legend: { x: number; row: number }[] = [];
  let lxPos = 60;
  let row = 0;
  for (const n of names) {
    const itemW = 16 + 7 * n.length + 24;
    if (lxPos + itemW > W - 20 && lxPos > 60) {
      row++;
      lxPos = 60;
    }
    legend.push({ x: lxPos, row });
    lxPos += itemW;
  }
  const legendRows = row + 1;
  const top = 56;
  const panelH = 440 - top - 70;
  const legendTop = top + panelH + 52; // below the panels and their axis labels
  const H = legendTop + 18 * legendRows;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="16" font-weight="bold">${esc(p.title)}</text>`);

  // ---- left: loss curves ----
  const lx = 60;
  const lw = 430;
  const w = p.smooth ?? 1;
  const curves = p.losses.map((s) => ({ name: s.name, v: movingAverage(s.values.filter(Number.isFinite), w) }));
  const all = curves.flatMap((c) => c.v);
  const maxLen = Math.max(1, ...curves.map((c) => c.v.length));
  const logY = Boolean(p.logY) && all.length > 0 && all.every((v) => v > 0);
  const tf = (v: number): number => (logY ? Math.log10(v) : v);
  let yLo = all.length ? Math.min(...all.map(tf)) : 0;
  let yHi = all.length ? Math.max(...all.map(tf)) : 1;
  if (yHi - yLo < 1e-6) {
    yLo -= 0.5;
    yHi += 0.5;
  }
  const pad = (yHi - yLo) * 0.05;
  yLo = logY ? yLo - pad : Math.max(0, yLo - pad);
  yHi += pad;
  const X = (i: number): number => lx + (maxLen <= 1 ? 0 : (i / (maxLen - 1)) * lw);
  const Y = (v: number): number => top + panelH - ((tf(v) - yLo) / (yHi - yLo)) * panelH;
  const yTicks = logY
    ? [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100].filter((t) => Math.log10(t) >= yLo && Math.log10(t) <= yHi)
    : ticks(yLo, yHi);
  out.push(`<text x="${lx + lw / 2}" y="${top - 12}" text-anchor="middle" font-size="13">${esc(p.lossTitle ?? `training loss${logY ? ' (log scale' : ''}${w > 1 ? `${logY ? ', ' : ' ('}moving average of ${w} steps)` : logY ? ')' : ''}`)}</text>`);
  for (const t of yTicks) {
    out.push(`<line x1="${lx}" x2="${lx + lw}" y1="${f(Y(t))}" y2="${f(Y(t))}" stroke="#e0e0e0"/>`);
    out.push(`<text x="${lx - 6}" y="${f(Y(t) + 4)}" text-anchor="end">${label(t)}</text>`);
  }
  for (const t of ticks(1, maxLen)) {
    out.push(`<text x="${f(X(t - 1))}" y="${top + panelH + 16}" text-anchor="middle">${label(t)}</text>`);
  }
  out.push(`<text x="${lx + lw / 2}" y="${top + panelH + 34}" text-anchor="middle">optimizer step</text>`);
  out.push(`<rect x="${lx}" y="${top}" width="${lw}" height="${panelH}" fill="none" stroke="#888"/>`);
  curves.forEach((c, i) => {
    if (!c.v.length) return;
    const pts = c.v.map((v, j) => `${f(X(j))},${f(Y(v))}`).join(' ');
    out.push(`<polyline fill="none" stroke="${colorOf(i)}" stroke-width="1.6" points="${pts}"><title>${esc(c.name)}</title></polyline>`);
  });

  // ---- right: grouped bars ----
  const bx = 570;
  const bw = 500;
  const nG = Math.max(1, p.groups.length);
  const nS = Math.max(1, p.bars.length);
  const gw = bw / nG;
  const barW = (gw * 0.8) / nS;
  const highest = Math.max(0, ...p.bars.flatMap((b) => b.values.map((v, i) => v + (b.err?.[i] ?? 0))).filter(Number.isFinite));
  const yMax = p.barMax ?? Math.min(1, Math.max(0.1, Math.ceil(highest * 10 - 1e-9) / 10));
  const BY = (v: number): number => top + panelH - (Math.max(0, Math.min(yMax, v)) / yMax) * panelH;
  out.push(`<text x="${bx + bw / 2}" y="${top - 12}" text-anchor="middle" font-size="13">${esc(p.barTitle ?? 'accuracy')}</text>`);
  for (const t of ticks(0, yMax)) {
    out.push(`<line x1="${bx}" x2="${bx + bw}" y1="${f(BY(t))}" y2="${f(BY(t))}" stroke="#e0e0e0"/>`);
    out.push(`<text x="${bx - 6}" y="${f(BY(t) + 4)}" text-anchor="end">${label(t)}</text>`);
  }
  p.groups.forEach((g, gi) => {
    out.push(`<text x="${f(bx + gi * gw + gw / 2)}" y="${top + panelH + 16}" text-anchor="middle">${esc(g)}</text>`);
  });
  p.bars.forEach((s, si) => {
    s.values.forEach((v, gi) => {
      const x = bx + gi * gw + gw * 0.1 + si * barW;
      const y = BY(v);
      out.push(`<rect x="${f(x)}" y="${f(y)}" width="${f(Math.max(1, barW - 1))}" height="${f(top + panelH - y)}" fill="${colorOf(si)}"><title>${esc(`${s.name} ${p.groups[gi] ?? ''}: ${(v * 100).toFixed(1)}%`)}</title></rect>`);
      const e = s.err?.[gi];
      if (e !== undefined && e > 0) {
        const cx = x + barW / 2;
        out.push(`<line x1="${f(cx)}" x2="${f(cx)}" y1="${f(BY(v + e))}" y2="${f(BY(v - e))}" stroke="#222"/>`);
      }
    });
  });
  out.push(`<rect x="${bx}" y="${top}" width="${bw}" height="${panelH}" fill="none" stroke="#888"/>`);

  // ---- legend (shared: same color = same configuration) ----
  names.forEach((n, i) => {
    const x = legend[i]!.x;
    const y = legendTop + 18 * legend[i]!.row + 6;
    out.push(`<rect x="${f(x)}" y="${y - 10}" width="12" height="12" fill="${colorOf(i)}"/>`);
    out.push(`<text x="${f(x + 16)}" y="${y}">${esc(n)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

export interface CurvePanel {
  title: string;
  /** x values shared by the panel's series (e.g. steps). */
  x: number[];
  series: BarSeries[];
}

/** Small multiples: one line panel per entry (y in [0, 1], shown in %), a shared legend below. */
export function curvePanelsSvg(p: { title: string; xLabel: string; yLabel: string; panels: CurvePanel[] }): string {
  const pw = 250;
  const ph = 200;
  const gap = 30;
  const left = 50;
  const top = 56;
  const W = left + p.panels.length * (pw + gap) + 10;
  const names = [...new Set(p.panels.flatMap((q) => q.series.map((s) => s.name)))];
  const H = top + ph + 60 + 18 * Math.ceil(names.length / 6);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="16" font-weight="bold">${esc(p.title)}</text>`);
  p.panels.forEach((q, pi) => {
    const x0 = left + pi * (pw + gap);
    const xs = q.x.length ? q.x : [0, 1];
    const xLo = Math.min(0, ...xs);
    const xHi = Math.max(...xs) > xLo ? Math.max(...xs) : xLo + 1;
    const X = (v: number): number => x0 + ((v - xLo) / (xHi - xLo)) * pw;
    const Y = (v: number): number => top + ph - Math.max(0, Math.min(1, v)) * ph;
    out.push(`<text x="${x0 + pw / 2}" y="${top - 8}" text-anchor="middle" font-weight="bold">${esc(q.title)}</text>`);
    out.push(`<rect x="${x0}" y="${top}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
    for (const t of [0, 0.25, 0.5, 0.75, 1]) {
      out.push(`<line x1="${x0}" y1="${f(Y(t))}" x2="${x0 + pw}" y2="${f(Y(t))}" stroke="#eee"/>`);
      if (pi === 0) out.push(`<text x="${x0 - 4}" y="${f(Y(t) + 4)}" text-anchor="end">${t * 100}</text>`);
    }
    for (const t of ticks(xLo, xHi, 4)) out.push(`<text x="${f(X(t))}" y="${top + ph + 14}" text-anchor="middle">${label(t)}</text>`);
    q.series.forEach((s) => {
      const c = colorOf(names.indexOf(s.name));
      const pts = s.values.map((v, i) => `${f(X(q.x[i]!))},${f(Y(v))}`).join(' ');
      out.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${pts}"/>`);
      s.values.forEach((v, i) => {
        out.push(`<circle cx="${f(X(q.x[i]!))}" cy="${f(Y(v))}" r="2.5" fill="${c}"/>`);
        const e = s.err?.[i];
        if (e) out.push(`<line x1="${f(X(q.x[i]!))}" y1="${f(Y(v - e))}" x2="${f(X(q.x[i]!))}" y2="${f(Y(v + e))}" stroke="${c}" stroke-opacity="0.6"/>`);
      });
    });
  });
  out.push(`<text x="${W / 2}" y="${top + ph + 32}" text-anchor="middle">${esc(p.xLabel)}</text>`);
  out.push(`<text x="14" y="${top + ph / 2}" text-anchor="middle" transform="rotate(-90 14 ${top + ph / 2})">${esc(p.yLabel)}</text>`);
  names.forEach((n, i) => {
    const lx = left + (i % 6) * 170;
    const ly = top + ph + 52 + 18 * Math.floor(i / 6);
    out.push(`<rect x="${lx}" y="${ly - 9}" width="12" height="10" fill="${colorOf(i)}"/><text x="${lx + 16}" y="${ly}">${esc(n)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
