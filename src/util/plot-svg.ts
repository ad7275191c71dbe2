// A small dependency-free SVG writer: line plots (loss curves per recipe) and grouped bar charts
// (per-recipe accuracy), side by side in one file. Used by `mixtune demo` and the studies.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export interface Series {
  name: string;
  /** [x, y] points; non-finite y values are skipped. */
  points: ReadonlyArray<readonly [number, number]>;
}

export interface Panel { x: number; y: number; w: number; h: number }

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

const n2 = (x: number): string => (Math.round(x * 100) / 100).toString();

/** "Nice" tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (hi <= lo) hi = lo + 1;
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number((Math.round(v / step) * step).toPrecision(12)));
  return out;
}

function tickLabel(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1000) return v.toFixed(0);
  if (a >= 10) return String(Math.round(v * 10) / 10);
  return String(Math.round(v * 1000) / 1000);
}

/** A line plot of several series inside `p` (SVG fragment). */
export function linePlot(p: Panel, series: readonly Series[], opts: { title?: string; xLabel?: string; yLabel?: string } = {}): string {
  const pts = series.flatMap((s) => s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)));
  const left = p.x + 55;
  const right = p.x + p.w - 10;
  const top = p.y + 30;
  const bottom = p.y + p.h - 40;
  const out: string[] = [];
  if (opts.title) out.push(`<text x="${n2((left + right) / 2)}" y="${n2(p.y + 18)}" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(opts.title)}</text>`);
  out.push(`<rect x="${n2(left)}" y="${n2(top)}" width="${n2(right - left)}" height="${n2(bottom - top)}" fill="none" stroke="#333"/>`);
  if (pts.length === 0) {
    out.push(`<text x="${n2((left + right) / 2)}" y="${n2((top + bottom) / 2)}" text-anchor="middle" font-size="12">no data</text>`);
    return out.join('\n');
  }
  let x0 = Math.min(...pts.map((q) => q[0]));
  let x1 = Math.max(...pts.map((q) => q[0]));
  let y0 = Math.min(...pts.map((q) => q[1]));
  let y1 = Math.max(...pts.map((q) => q[1]));
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
  const pad = (y1 - y0) * 0.05;
  y0 -= pad;
  y1 += pad;
  const sx = (x: number): number => left + ((x - x0) / (x1 - x0)) * (right - left);
  const sy = (y: number): number => bottom - ((y - y0) / (y1 - y0)) * (bottom - top);
  for (const t of niceTicks(y0, y1)) {
    if (t < y0 || t > y1) continue;
    out.push(`<line x1="${n2(left)}" y1="${n2(sy(t))}" x2="${n2(right)}" y2="${n2(sy(t))}" stroke="#ddd"/>`);
    out.push(`<text x="${n2(left - 5)}" y="${n2(sy(t) + 4)}" text-anchor="end" font-size="11">${tickLabel(t)}</text>`);
  }
  for (const t of niceTicks(x0, x1)) {
    if (t < x0 || t > x1) continue;
    out.push(`<text x="${n2(sx(t))}" y="${n2(bottom + 15)}" text-anchor="middle" font-size="11">${tickLabel(t)}</text>`);
  }
  if (opts.xLabel) out.push(`<text x="${n2((left + right) / 2)}" y="${n2(bottom + 32)}" text-anchor="middle" font-size="12">${escapeXml(opts.xLabel)}</text>`);
  if (opts.yLabel) out.push(`<text x="${n2(p.x + 14)}" y="${n2((top + bottom) / 2)}" text-anchor="middle" font-size="12" transform="rotate(-90 ${n2(p.x + 14)} ${n2((top + bottom) / 2)})">${escapeXml(opts.yLabel)}</text>`);
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length]!;
    const ps = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    if (ps.length) out.push(`<polyline fill="none" stroke="${c}" stroke-width="1.5" points="${ps.map(([x, y]) => `${n2(sx(x))},${n2(sy(y))}`).join(' ')}"/>`);
    const ly = top + 14 + i * 16;
    out.push(`<line x1="${n2(right - 120)}" y1="${n2(ly - 4)}" x2="${n2(right - 100)}" y2="${n2(ly - 4)}" stroke="${c}" stroke-width="2"/>`);
    out.push(`<text x="${n2(right - 95)}" y="${n2(ly)}" font-size="12">${escapeXml(s.name)}</text>`);
  });
  return out.join('\n');
}

/** A grouped bar chart: groups (e.g. recipes) × bars (e.g. metrics), values in [0, yMax]. */
export function barChart(p: Panel, data: Readonly<Record<string, Readonly<Record<string, number>>>>, opts: { title?: string; yLabel?: string; yMax?: number; percent?: boolean } = {}): string {
  const groups = Object.keys(data);
  const bars = [...new Set(groups.flatMap((g) => Object.keys(data[g]!)))];
  const left = p.x + 55;
  const right = p.x + p.w - 10;
  const top = p.y + 30 + 16 * Math.ceil(bars.length / 3);
  const bottom = p.y + p.h - 40;
  const vals = groups.flatMap((g) => Object.values(data[g]!)).filter(Number.isFinite);
  const yMax = opts.yMax ?? Math.max(1e-9, ...vals);
  const sy = (v: number): number => bottom - (Math.max(0, Math.min(v, yMax)) / yMax) * (bottom - top);
  const out: string[] = [];
  if (opts.title) out.push(`<text x="${n2((left + right) / 2)}" y="${n2(p.y + 18)}" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(opts.title)}</text>`);
  for (const t of niceTicks(0, yMax)) {
    if (t > yMax) continue;
    out.push(`<line x1="${n2(left)}" y1="${n2(sy(t))}" x2="${n2(right)}" y2="${n2(sy(t))}" stroke="#ddd"/>`);
    out.push(`<text x="${n2(left - 5)}" y="${n2(sy(t) + 4)}" text-anchor="end" font-size="11">${opts.percent ? `${Math.round(t * 100)}%` : tickLabel(t)}</text>`);
  }
  out.push(`<line x1="${n2(left)}" y1="${n2(bottom)}" x2="${n2(right)}" y2="${n2(bottom)}" stroke="#333"/>`);
  if (opts.yLabel) out.push(`<text x="${n2(p.x + 14)}" y="${n2((top + bottom) / 2)}" text-anchor="middle" font-size="12" transform="rotate(-90 ${n2(p.x + 14)} ${n2((top + bottom) / 2)})">${escapeXml(opts.yLabel)}</text>`);
  const gw = (right - left) / Math.max(1, groups.length);
  const bw = (gw * 0.8) / Math.max(1, bars.length);
  groups.forEach((g, gi) => {
    bars.forEach((b, bi) => {
      const v = data[g]![b];
      if (v === undefined || !Number.isFinite(v)) return;
      const x = left + gi * gw + gw * 0.1 + bi * bw;
      out.push(`<rect x="${n2(x)}" y="${n2(sy(v))}" width="${n2(bw * 0.9)}" height="${n2(bottom - sy(v))}" fill="${COLORS[bi % COLORS.length]}"><title>${escapeXml(`${g} ${b}: ${opts.percent ? (v * 100).toFixed(1) + '%' : v}`)}</title></rect>`);
      out.push(`<text x="${n2(x + bw * 0.45)}" y="${n2(sy(v) - 3)}" text-anchor="middle" font-size="9">${opts.percent ? (v * 100).toFixed(0) : tickLabel(v)}</text>`);
    });
    out.push(`<text x="${n2(left + gi * gw + gw / 2)}" y="${n2(bottom + 16)}" text-anchor="middle" font-size="12">${escapeXml(g)}</text>`);
  });
  bars.forEach((b, bi) => {
    const lx = left + (bi % 3) * ((right - left) / 3);
    const ly = p.y + 40 + 16 * Math.floor(bi / 3);
    out.push(`<rect x="${n2(lx)}" y="${n2(ly - 9)}" width="10" height="10" fill="${COLORS[bi % COLORS.length]}"/>`);
    out.push(`<text x="${n2(lx + 14)}" y="${n2(ly)}" font-size="11">${escapeXml(b)}</text>`);
  });
  return out.join('\n');
}

/** A complete SVG document of the given size holding the fragments. */
export function svgDocument(width: number, height: number, fragments: readonly string[], title?: string): string {
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    ...(title ? [`<text x="${width / 2}" y="20" text-anchor="middle" font-size="15">${escapeXml(title)}</text>`] : []),
    ...fragments,
    '</svg>',
    '',
  ].join('\n');
}

export interface LossAccuracyPlot {
  title?: string;
  /** Training loss per recipe (x = step). */
  loss: readonly Series[];
  /** recipe -> metric -> fraction in [0, 1]. */
  accuracy: Readonly<Record<string, Readonly<Record<string, number>>>>;
}

/** Loss curves (left) and per-recipe accuracy bars (right), one SVG file, written atomically. */
export function renderLossAndAccuracySvg(p: LossAccuracyPlot): string {
  const W = 1100;
  const H = 440;
  const off = p.title ? 24 : 0;
  return svgDocument(W, H + off, [
    linePlot({ x: 0, y: off, w: 540, h: H }, p.loss, { title: 'training loss', xLabel: 'optimizer step', yLabel: 'loss (nats/token)' }),
    barChart({ x: 550, y: off, w: 540, h: H }, p.accuracy, { title: 'accuracy (held-out test split)', yLabel: 'accuracy', yMax: 1, percent: true }),
  ], p.title);
}

export function writeLossAndAccuracySvg(path: string, p: LossAccuracyPlot): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, renderLossAndAccuracySvg(p));
  renameSync(tmp, path);
}
