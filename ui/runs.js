// Runs: every run under the folders (status, steps, tokens/s, losses), the checked runs' loss / lr
// / grad-norm curves overlaid, and the selected run's config and summary. Updated live.
import { api, h, fmt, PALETTE, errorBox, fileUrl } from './util.js';
import { lineChart } from './charts.js';

export function createRunsView(root, info) {
  let runs = [];
  const checked = new Set();
  let touched = false; // the user chose runs: keep the choice
  let detail = null;
  const metrics = new Map(); // id -> {steps, evals, malformed}
  let logY = true;
  const table = h('div', { class: 'card' });
  const charts = h('div');
  const details = h('div');
  root.append(
    h('div', { class: 'toolbar' },
      h('span', { class: 'muted' }, `run folders: ${info.roots.join(', ')}`),
      h('label', {}, h('input', { type: 'checkbox', checked: true, onchange: (e) => { logY = e.target.checked; drawCharts(); } }), ' log-scale loss')),
    table, charts, details);

  const colorOf = (id) => PALETTE[runs.findIndex((r) => r.id === id) % PALETTE.length];

  async function loadRuns() {
    try {
      runs = (await api('/api/runs')).runs;
    } catch (e) {
      table.replaceChildren(errorBox(e));
      return;
    }
    if (!touched) {
      // default: every running run, else the most recently updated ones (up to 4)
      checked.clear();
      const running = runs.filter((r) => r.status === 'running');
      const pick = (running.length ? running : [...runs].sort((a, b) => b.updated - a.updated)).slice(0, 4);
      for (const r of pick) checked.add(r.id);
    }
    for (const id of [...checked]) if (!runs.some((r) => r.id === id)) checked.delete(id);
    drawTable();
  }

  async function loadMetrics(ids) {
    await Promise.all(ids.map(async (id) => {
      try {
        metrics.set(id, await api(`/api/metrics?run=${encodeURIComponent(id)}`));
      } catch (e) {
        metrics.set(id, { steps: [], evals: [], malformed: 0, error: e.message });
      }
    }));
    drawCharts();
  }

  function drawTable() {
    if (runs.length === 0) {
      table.replaceChildren(h('p', { class: 'muted' }, 'No runs found yet. Runs appear here as soon as mixtune train, demo or study writes metrics.jsonl under the run folders.'));
      return;
    }
    const rows = runs.map((r) => h('tr', { class: detail === r.id ? 'selected' : '', 'data-run': r.id },
      h('td', {}, h('input', { type: 'checkbox', checked: checked.has(r.id), title: 'overlay its curves', onchange: (e) => {
        touched = true;
        if (e.target.checked) checked.add(r.id); else checked.delete(r.id);
        loadMetrics([...checked].filter((id) => !metrics.has(id))).then(drawCharts);
        drawCharts();
      } })),
      h('td', {}, h('span', { class: 'swatch', style: { background: colorOf(r.id) } }), h('a', { href: '#runs', class: 'run-name', onclick: (e) => { e.preventDefault(); detail = r.id; drawTable(); drawDetails(); } }, r.name)),
      h('td', {}, r.kind), h('td', {}, r.recipe ?? '–'),
      h('td', {}, h('span', { class: `badge ${r.status}`, title: r.statusNote }, r.status)),
      h('td', { class: 'num' }, `${r.steps ?? '–'}${r.totalSteps ? ` / ${r.totalSteps}` : ''}`),
      h('td', { class: 'num' }, fmt.int(r.tokensPerS)),
      h('td', { class: 'num' }, fmt.loss(r.finalLoss)),
      h('td', { class: 'num' }, fmt.loss(r.evalLoss)),
      h('td', { class: 'small muted' }, fmt.time(r.updated))));
    table.replaceChildren(h('table', { class: 'runs' },
      h('thead', {}, h('tr', {}, ['', 'run', 'kind', 'recipe', 'status', 'steps', 'tokens/s', 'final loss', 'eval loss', 'updated'].map((c, i) => h('th', { class: i >= 5 && i <= 8 ? 'num' : '' }, c)))),
      h('tbody', {}, rows)));
  }

  function drawCharts() {
    const sel = runs.filter((r) => checked.has(r.id));
    const series = (key) => sel.map((r) => ({ name: r.name, color: colorOf(r.id), points: (metrics.get(r.id)?.steps ?? []).filter((s) => s[key] !== null).map((s) => [s.step, s[key]]) }));
    const evals = sel.map((r) => ({ name: `${r.name} (eval)`, color: colorOf(r.id), dashed: true, dots: true, points: (metrics.get(r.id)?.evals ?? []).map((e) => [e.step, e.eval_loss]) })).filter((s) => s.points.length);
    const notes = sel.flatMap((r) => {
      const m = metrics.get(r.id);
      if (!m) return [];
      return [m.error ? `${r.name}: ${m.error}` : null, m.malformed ? `${r.name}: ${m.malformed} malformed metrics line(s) skipped` : null].filter(Boolean);
    });
    charts.replaceChildren(
      sel.length === 0 ? h('p', { class: 'muted' }, 'Check runs above to draw their curves.') : '',
      h('div', { class: 'legend' }, sel.map((r) => h('span', {}, h('i', { style: { background: colorOf(r.id) } }), r.name)), evals.length ? h('span', { class: 'muted' }, 'dashed: eval loss') : ''),
      notes.length ? h('div', { class: 'small muted' }, notes.join('; ')) : '',
      h('div', { class: 'charts' },
        lineChart({ title: 'loss', series: [...series('loss'), ...evals], logY }),
        lineChart({ title: 'learning rate', series: series('lr') }),
        lineChart({ title: 'grad norm (before clipping)', series: series('grad_norm'), logY }),
        lineChart({ title: 'tokens/s', series: series('tokens_per_s') })));
  }

  function drawDetails() {
    const r = runs.find((x) => x.id === detail);
    if (!r) return details.replaceChildren();
    const kv = (o) => h('div', { class: 'kv' }, Object.entries(o).flatMap(([k, v]) => [h('div', {}, k), h('div', {}, typeof v === 'object' ? JSON.stringify(v) : String(v))]));
    details.replaceChildren(h('div', { class: 'card run-details' },
      h('h2', {}, r.name, ' ', h('span', { class: `badge ${r.status}` }, r.status)),
      h('div', { class: 'small muted' }, r.statusNote),
      h('div', { class: 'small' }, 'files: ', r.files.map((f) => [h('a', { href: fileUrl(r.root, r.path ? `${r.path}/${f}` : f), target: '_blank' }, f), ' ']),
        r.hasModel ? h('a', { href: '#chat', onclick: () => sessionStorage.setItem('mixtune-chat-model', r.id) }, 'chat with its final/ model') : ''),
      r.config ? [h('h3', {}, 'config (run.json)'), kv(r.config)] : h('p', { class: 'muted small' }, 'no run.json (a demo or study run: its settings are in the results folder)'),
      r.summary ? [h('h3', {}, 'summary.json'), kv(Object.fromEntries(Object.entries(r.summary).filter(([k]) => k !== 'data'))), r.summary.data ? [h('h3', {}, 'data'), kv(r.summary.data)] : ''] : ''));
  }

  async function refresh(ids) {
    await loadRuns();
    await loadMetrics(ids ?? [...checked]);
    drawDetails();
  }

  let first = true;
  return {
    show() {
      if (first) {
        first = false;
        refresh();
      }
    },
    changed(ids) {
      if (first) return;
      const runIds = ids.filter((id) => !id.startsWith('results:'));
      if (runIds.length === 0) return;
      refresh(runIds.filter((id) => checked.has(id) || !metrics.has(id)).concat([...checked].filter((id) => !metrics.has(id))));
    },
  };
}
