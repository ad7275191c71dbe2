// Small helpers shared by the views: JSON requests with the server's error message, element
// building, number formats, colours.

export async function api(path, init) {
  const r = await fetch(path, init);
  const text = await r.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`${path}: ${r.status} ${text.slice(0, 200)}`);
  }
  if (!r.ok) throw new Error(body?.error?.message ?? `${path}: HTTP ${r.status}`);
  return body;
}

/** h('div', {class: 'x', onclick}, child, 'text', ...) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function errorBox(e) {
  return h('div', { class: 'error' }, String(e?.message ?? e));
}

export const fmt = {
  loss: (x) => (x === null || x === undefined ? '–' : Number(x).toFixed(4)),
  int: (x) => (x === null || x === undefined ? '–' : Math.round(x).toLocaleString('en-US')),
  pct: (x) => (x === null || x === undefined ? '–' : (100 * x).toFixed(1)),
  time: (ms) => (ms ? new Date(ms).toLocaleString() : '–'),
};

/** Distinct colours for runs / series. */
export const PALETTE = ['#2f6fdf', '#d9480f', '#2b8a3e', '#9c36b5', '#c92a2a', '#1098ad', '#e67700', '#5f3dc4', '#087f5b', '#a61e4d'];

/** A file of run folder `root` at `path` (each segment encoded). */
export function fileUrl(root, path) {
  return `/files/${root}/${path.split('/').map(encodeURIComponent).join('/')}`;
}
