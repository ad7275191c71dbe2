// Rows: the prepared rows of a train.yaml (as `mixtune prepare --show` sees them) — each token
// coloured by group and part, its RoPE position under it, loss tokens underlined — and the row's
// attention pattern as a query × key matrix (which keys each query sees, and how MISO outputs
// combine their inputs). Several panels side by side compare recipes on the same data.
import { api, h, errorBox } from './util.js';

const PART_HUES = [210, 25, 130, 285, 350, 175, 50, 255];

/** Token colours: n = 1 groups alternate two hues; a MISO group's input i and its output have their own. */
function colorOf(row, t, light) {
  const g = row.group[t];
  const info = row.groups[g];
  const l = light ? 87 : 52;
  if (info.nInputs <= 1) return `hsl(${g % 2 ? 160 : 205}, ${light ? 45 : 55}%, ${l - (g % 2) * 3}%)`;
  const p = row.part[t];
  return p < 0 ? `hsl(0, 0%, ${light ? 80 : 35}%)` : `hsl(${PART_HUES[p % PART_HUES.length]}, 70%, ${l}%)`;
}

function partLabel(row, t) {
  const info = row.groups[row.group[t]];
  return info.nInputs > 1 ? (row.part[t] < 0 ? 'output' : `input ${row.part[t]}`) : 'causal';
}

function posRange(p) {
  if (!p.length) return '';
  return p.every((x, i) => x === p[0] + i) ? (p.length === 1 ? `${p[0]}` : `${p[0]}..${p[p.length - 1]}`) : p.join(',');
}

/** The prepare --show text: one block per group, one line per part. */
function groupsText(row) {
  const out = [];
  let t = 0;
  while (t < row.length) {
    const g = row.group[t];
    let e = t;
    while (e < row.length && row.group[e] === g) e++;
    const info = row.groups[g];
    out.push(`group ${g}: ${info.nInputs > 1 ? `MISO, ${info.nInputs} inputs, ${info.weighting} weighting` : 'causal'}, ${e - t} tokens`);
    let p = t;
    while (p < e) {
      let q = p;
      while (q < e && row.part[q] === row.part[p]) q++;
      const loss = row.loss.slice(p, q).filter(Boolean).length;
      out.push(`  ${(info.nInputs > 1 ? (row.part[p] < 0 ? 'output' : `input ${row.part[p]}`) : 'tokens').padEnd(8)} pos ${posRange(row.positions.slice(p, q)).padEnd(10)} ${q - p} tokens, ${loss} with loss`);
      p = q;
    }
    t = e;
  }
  return out.join('\n');
}

/** The row that shows the recipe best: the first with a MISO group, else the one packing the most groups. */
function telling(rows) {
  let best = 0;
  let score = -1;
  for (const r of rows) {
    const s = (r.kinds.some((k) => k.startsWith('MISO')) ? 1000 : 0) + Math.min(r.groups, 50);
    if (s > score) (score = s), (best = r.index);
  }
  return best;
}

function panel(info, initial, onRemove) {
  const state = { config: initial.config ?? 0, variant: initial.variant ?? 'config', split: 'train', row: null, query: null };
  let view = null;
  let row = null;
  const el = h('div', { class: 'card rows-panel', 'data-variant': state.variant });
  const controls = h('div', { class: 'toolbar' });
  const statsEl = h('div', { class: 'small muted' });
  const content = h('div');
  el.append(controls, statsEl, content);

  function drawControls() {
    const rows = view ? view[state.split] : [];
    controls.replaceChildren(
      h('select', { title: 'train.yaml', onchange: (e) => { state.config = Number(e.target.value); state.row = null; load(); } },
        info.configs.map((c, i) => h('option', { value: i, selected: i === state.config }, c.split('/').slice(-1)[0]))),
      h('select', { class: 'variant', title: 'recipe applied to the data', onchange: (e) => { state.variant = e.target.value; el.dataset.variant = state.variant; state.row = null; load(); } },
        info.variants.map((v) => h('option', { value: v.id, selected: v.id === state.variant }, v.label))),
      h('select', { onchange: (e) => { state.split = e.target.value; state.row = telling(view[state.split]); drawControls(); loadRow(); } },
        ['train', 'eval'].map((s) => h('option', { value: s, selected: s === state.split }, `${s} (${view ? view[s].length : '…'} rows)`))),
      h('select', { class: 'row-select', onchange: (e) => { state.row = Number(e.target.value); loadRow(); } },
        rows.slice(0, 500).map((r) => h('option', { value: r.index, selected: r.index === state.row }, `row ${r.index}: ${r.length} tok, ${r.groups} group${r.groups > 1 ? 's' : ''}, ${r.lossTokens} loss — ${r.kinds.join(', ')}`))),
      onRemove ? h('button', { class: 'secondary', onclick: () => { el.remove(); onRemove(); } }, 'remove') : '');
  }

  async function load() {
    drawControls();
    content.replaceChildren(h('p', { class: 'muted' }, 'preparing rows …'));
    statsEl.textContent = '';
    try {
      view = await api(`/api/rows?config=${state.config}&variant=${encodeURIComponent(state.variant)}`);
    } catch (e) {
      view = null;
      content.replaceChildren(errorBox(e));
      return;
    }
    if (state.row === null || state.row >= view[state.split].length) state.row = telling(view[state.split]);
    const s = view.stats;
    statsEl.textContent = `recipe ${s.recipe}: ${s.train.groups} groups → ${s.train.rows} rows of ≤ ${view.maxLen} tokens, packing ${(100 * s.train.efficiency).toFixed(1)}%, ` +
      `${s.train.tokens} tokens (${s.train.targetTokens} with loss)${view.note ? ` — ${view.note}` : ''}${s.warnings.length ? ` — warning: ${s.warnings[0]}` : ''}`;
    drawControls();
    await loadRow();
  }

  async function loadRow() {
    if (!view || view[state.split].length === 0) {
      content.replaceChildren(h('p', { class: 'muted' }, 'no rows'));
      return;
    }
    try {
      row = await api(`/api/row?config=${state.config}&variant=${encodeURIComponent(state.variant)}&split=${state.split}&row=${state.row}`);
    } catch (e) {
      content.replaceChildren(errorBox(e));
      return;
    }
    state.query = null;
    drawRow();
  }

  function drawRow() {
    const seen = new Set();
    if (state.query !== null) {
      const k = row.keys[state.query];
      for (let i = 0; i < k.length; i += 2) for (let j = k[i]; j < k[i + 1]; j++) seen.add(j);
    }
    const toks = h('div', { class: 'tokens' });
    for (let t = 0; t < row.length; t++) {
      const cls = ['tok', row.loss[t] ? 'loss' : '', t === state.query ? 'sel' : '', seen.has(t) && t !== state.query ? 'seen' : '', t > 0 && row.group[t] !== row.group[t - 1] ? 'gstart' : ''].filter(Boolean).join(' ');
      toks.append(h('span', {
        class: cls, style: { background: colorOf(row, t, true) }, 'data-t': t,
        title: `t ${t} · group ${row.group[t]} · ${partLabel(row, t)} · position ${row.positions[t]} · id ${row.tokens[t]}${row.loss[t] ? ' · carries a loss' : ''}\nattends: ${row.rule[t]}`,
        onclick: () => { state.query = state.query === t ? null : t; drawRow(); },
      }, h('span', { class: 't' }, row.text[t]), h('span', { class: 'p' }, row.positions[t])));
    }
    const legend = h('div', { class: 'small legend' },
      [...new Set(row.groups.map((g) => g.nInputs))].some((n) => n > 1)
        ? [...Array(Math.max(...row.groups.map((g) => g.nInputs))).keys()].map((i) => h('span', {}, h('span', { class: 'swatch', style: { background: `hsl(${PART_HUES[i % PART_HUES.length]}, 70%, 60%)` } }), `input ${i}`)).concat([h('span', {}, h('span', { class: 'swatch', style: { background: 'hsl(0,0%,45%)' } }), 'output')])
        : [h('span', {}, h('span', { class: 'swatch', style: { background: 'hsl(205,55%,60%)' } }), h('span', { class: 'swatch', style: { background: 'hsl(160,55%,55%)' } }), 'causal groups (alternating)')],
      h('span', {}, h('b', {}, h('u', {}, 'underlined')), ' = carries a loss; small number = RoPE position; click a token to see its keys'));
    content.replaceChildren(legend, toks, h('div', { class: 'matrix-wrap' }, matrix(), h('div', { class: 'groups-text small' }, groupsText(row), '\n\n', state.query !== null ? `query ${state.query} ('${row.text[state.query]}', position ${row.positions[state.query]}) sees ${seen.size} keys: ${row.rule[state.query]}` : '')));
  }

  function matrix() {
    const T = row.length;
    const cell = Math.max(1, Math.floor(420 / T));
    const N = T * cell;
    const c = h('canvas', { class: 'matrix', width: N, height: N, 'data-tokens': T, title: 'rows: queries, columns: keys' });
    c.style.width = `${Math.min(420, N)}px`;
    c.style.height = `${Math.min(420, N)}px`;
    const g = c.getContext('2d');
    g.fillStyle = '#fff';
    g.fillRect(0, 0, N, N);
    for (let q = 0; q < T; q++) {
      const k = row.keys[q];
      for (let i = 0; i < k.length; i += 2) {
        g.fillStyle = colorOf(row, k[i], false);
        g.fillRect(k[i] * cell, q * cell, (k[i + 1] - k[i]) * cell, cell);
      }
    }
    if (state.query !== null) {
      g.strokeStyle = '#000';
      g.lineWidth = Math.max(1, cell);
      g.strokeRect(0, state.query * cell, N, cell);
    }
    const tip = h('div', { class: 'small muted' }, 'hover: query × key');
    c.addEventListener('mousemove', (ev) => {
      const b = c.getBoundingClientRect();
      const q = Math.min(T - 1, Math.floor(((ev.clientY - b.top) / b.height) * T));
      const kk = Math.min(T - 1, Math.floor(((ev.clientX - b.left) / b.width) * T));
      const ranges = row.keys[q];
      let vis = false;
      for (let i = 0; i < ranges.length; i += 2) if (kk >= ranges[i] && kk < ranges[i + 1]) vis = true;
      tip.textContent = `query ${q} '${row.text[q]}' (pos ${row.positions[q]}, ${partLabel(row, q)}) → key ${kk} '${row.text[kk]}' (pos ${row.positions[kk]}, ${partLabel(row, kk)}): ${vis ? `seen (${row.rule[q]})` : 'not seen'}`;
    });
    c.addEventListener('click', (ev) => {
      const b = c.getBoundingClientRect();
      state.query = Math.min(T - 1, Math.floor(((ev.clientY - b.top) / b.height) * T));
      drawRow();
    });
    return h('div', {}, c, tip);
  }

  load();
  return el;
}

export function createRowsView(root, info) {
  const panels = h('div', { class: 'panels' });
  let started = false;
  const add = (variant) => panels.append(panel(info, { config: Number(cfgSel.value || 0), variant }, () => {}));
  const cfgSel = h('select', {}, info.configs.map((c, i) => h('option', { value: i }, c)));
  root.append(
    h('div', { class: 'toolbar' },
      info.configs.length ? [h('label', {}, 'config for new panels: ', cfgSel),
        h('button', { onclick: () => add('config') }, 'add panel'),
        h('button', { class: 'secondary', onclick: () => { panels.replaceChildren(); for (const v of ['causal', 'packed', 'moi', 'miso-para', 'miso-succ']) add(v); } }, 'compare recipes side by side')] : ''),
    info.configs.length ? panels : h('p', { class: 'muted' }, 'Start mixtune ui with --config train.yaml (repeatable) to see the prepared rows of a config and their attention pattern.'));
  return {
    show() {
      if (!started && info.configs.length) {
        started = true;
        panels.append(panel(info, { config: 0, variant: 'config' }, null));
      }
    },
  };
}
