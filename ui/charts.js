// Line charts drawn as SVG: several named series (a run each), optional dashed series with dots
// (eval loss), linear or log y, axis ticks, a legend, and a hover readout of the nearest step.
import { h } from './util.js';

const NS = 'http://www.w3.org/2000/svg';
const svg = (tag, attrs = {}) => {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
};

function ticks(lo, hi, n) {
  if (!(hi > lo)) return [lo];
  const step0 = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0) ?? step0;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-12; v += step) out.push(+v.toPrecision(12));
  return out;
}

const label = (v) => (Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(1) : String(+v.toPrecision(4)));

/**
 * series: [{name, color, points: [[x, y], ...], dashed?, dots?}]; returns an element whose SVG
 * holds one <path class="series" data-run=name data-points=n> per series.
 */
export function lineChart({ title, series, logY = false, xLabel = 'step', width = 520, height = 260 }) {
  const wrap = h('div', { class: 'chart card' });
  const W = width, H = height, L = 54, R = 12, T = 24, B = 34;
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title });
  const t = svg('text', { x: L, y: 15, class: 'title' });
  t.textContent = title;
  root.append(t);
  const pts = series.flatMap((s) => s.points).filter(([, y]) => Number.isFinite(y) && (!logY || y > 0));
  if (pts.length === 0) {
    const e = svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' });
    e.textContent = 'no data yet';
    root.append(e);
    wrap.append(root);
    return wrap;
  }
  const fy = logY ? Math.log10 : (v) => v;
  let x0 = Math.min(...pts.map((p) => p[0])), x1 = Math.max(...pts.map((p) => p[0]));
  let y0 = Math.min(...pts.map((p) => fy(p[1]))), y1 = Math.max(...pts.map((p) => fy(p[1])));
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) (y0 -= 0.5), (y1 += 0.5);
  const pad = (y1 - y0) * 0.05;
  y0 -= pad; y1 += pad;
  const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y) => T + (1 - (fy(y) - y0) / (y1 - y0)) * (H - T - B);
  // grid and ticks
  const yt = logY ? ticks(y0, y1, 4).map((v) => 10 ** v) : ticks(y0, y1, 5);
  for (const v of yt) {
    const y = sy(v);
    if (y < T - 1 || y > H - B + 1) continue;
    root.append(svg('line', { x1: L, x2: W - R, y1: y, y2: y, class: 'grid' }));
    const tx = svg('text', { x: L - 6, y: y + 4, 'text-anchor': 'end' });
    tx.textContent = label(v);
    root.append(tx);
  }
  for (const v of ticks(x0, x1, 6)) {
    const x = sx(v);
    const tx = svg('text', { x, y: H - B + 14, 'text-anchor': 'middle' });
    tx.textContent = label(v);
    root.append(tx);
  }
  const xl = svg('text', { x: (L + W - R) / 2, y: H - 4, 'text-anchor': 'middle' });
  xl.textContent = xLabel + (logY ? '  (log y)' : '');
  root.append(xl);
  root.append(svg('line', { x1: L, x2: L, y1: T, y2: H - B, class: 'axis' }), svg('line', { x1: L, x2: W - R, y1: H - B, y2: H - B, class: 'axis' }));
  // series
  for (const s of series) {
    const p = s.points.filter(([, y]) => Number.isFinite(y) && (!logY || y > 0));
    if (p.length === 0) continue;
    const d = p.map(([x, y], i) => `${i ? 'L' : 'M'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join('');
    root.append(svg('path', { d, stroke: s.color, class: `series${s.dashed ? ' eval' : ''}`, 'data-run': s.name, 'data-points': p.length }));
    if (s.dots || p.length === 1) for (const [x, y] of p) root.append(svg('circle', { cx: sx(x), cy: sy(y), r: 3, fill: s.color, class: s.dashed ? 'eval' : '' }));
  }
  // hover: the nearest step of every series
  const cursor = svg('line', { y1: T, y2: H - B, stroke: '#888', 'stroke-dasharray': '2 2', visibility: 'hidden' });
  const readout = svg('text', { x: W - R, y: 15, 'text-anchor': 'end' });
  root.append(cursor, readout);
  root.addEventListener('mousemove', (ev) => {
    const box = root.getBoundingClientRect();
    const x = x0 + ((((ev.clientX - box.left) / box.width) * W - L) / (W - L - R)) * (x1 - x0);
    const parts = [];
    for (const s of series) {
      if (!s.points.length) continue;
      const best = s.points.reduce((a, b) => (Math.abs(b[0] - x) < Math.abs(a[0] - x) ? b : a));
      parts.push(`${s.name}: ${label(best[1])} @${best[0]}`);
    }
    cursor.setAttribute('x1', sx(Math.max(x0, Math.min(x1, x))));
    cursor.setAttribute('x2', sx(Math.max(x0, Math.min(x1, x))));
    cursor.setAttribute('visibility', 'visible');
    readout.textContent = parts.slice(0, 3).join('   ');
  });
  root.addEventListener('mouseleave', () => {
    cursor.setAttribute('visibility', 'hidden');
    readout.textContent = '';
  });
  wrap.append(root);
  return wrap;
}

/** Horizontal grouped bars: groups (metrics) × bars (recipes), values in [0, 1]. */
export function barChart({ title, groups, bars, colors, width = 620 }) {
  const wrap = h('div', { class: 'chart card' });
  const rowH = 14, gap = 10, L = 150, R = 60, T = 26;
  const H = T + groups.length * (bars.length * rowH + gap) + 10;
  const root = svg('svg', { viewBox: `0 0 ${width} ${H}`, role: 'img', 'aria-label': title, style: `max-width: ${width}px` });
  const t = svg('text', { x: 4, y: 15, class: 'title' });
  t.textContent = title;
  root.append(t);
  const max = Math.max(0.05, ...bars.flatMap((b) => b.values.filter(Number.isFinite)));
  let y = T;
  groups.forEach((g, gi) => {
    const gl = svg('text', { x: L - 8, y: y + (bars.length * rowH) / 2 + 4, 'text-anchor': 'end' });
    gl.textContent = g;
    root.append(gl);
    bars.forEach((b, bi) => {
      const v = b.values[gi];
      const w = Number.isFinite(v) ? (v / max) * (width - L - R) : 0;
      root.append(svg('rect', { x: L, y: y + 1, width: Math.max(0.5, w), height: rowH - 2, fill: colors[bi], class: 'bar', 'data-name': b.name }));
      if (b.err?.[gi]) {
        const e = (b.err[gi] / max) * (width - L - R);
        root.append(svg('line', { x1: L + w - e, x2: L + w + e, y1: y + rowH / 2, y2: y + rowH / 2, stroke: '#111' }));
      }
      const vl = svg('text', { x: L + w + 4, y: y + rowH - 3 });
      vl.textContent = Number.isFinite(v) ? `${(100 * v).toFixed(1)}%` : '–';
      root.append(vl);
      y += rowH;
    });
    y += gap;
  });
  wrap.append(root);
  return wrap;
}
