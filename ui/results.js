// Results: a demo's or a study's results.json as tables (mean ± std in %), accuracy bars, scores
// per constraint type / domain, and each run's responses with their verdicts.
import { api, h, fmt, PALETTE, errorBox, fileUrl } from './util.js';
import { barChart } from './charts.js';

export function createResultsView(root) {
  let list = [];
  let current = null;
  const picker = h('div', { class: 'toolbar' });
  const body = h('div');
  const responses = h('div');
  root.append(picker, body, responses);

  async function loadList() {
    try {
      list = (await api('/api/runs')).results;
    } catch (e) {
      picker.replaceChildren(errorBox(e));
      return;
    }
    if (list.length === 0) {
      picker.replaceChildren(h('p', { class: 'muted' }, 'No demo or study results under the run folders yet (mixtune demo / mixtune study miso|moi write results.json).'));
      body.replaceChildren();
      return;
    }
    if (!current || !list.some((r) => r.id === current)) current = list[0].id;
    picker.replaceChildren(h('label', {}, 'results: ', h('select', { onchange: (e) => { current = e.target.value; loadTable(); } },
      list.map((r) => h('option', { value: r.id, selected: r.id === current }, `${r.name} (${r.kind})`)))));
    await loadTable();
  }

  const cell = (s) => (s ? `${fmt.pct(s.mean)}${s.std !== null && s.std !== undefined ? ` ± ${fmt.pct(s.std)}` : ''}` : '–');

  async function loadTable() {
    let r;
    try {
      r = await api(`/api/results?id=${encodeURIComponent(current)}`);
    } catch (e) {
      body.replaceChildren(errorBox(e));
      return;
    }
    const t = r.table;
    const base = r.path ? `${r.path}/` : '';
    const colors = t.rows.map((_, i) => PALETTE[i % PALETTE.length]);
    const main = h('table', { class: 'results' },
      h('thead', {}, h('tr', {}, h('th', {}, t.kind === 'study-moi' ? 'configuration' : 'recipe'), t.metrics.map((m) => h('th', { class: 'num' }, `${m.label} %`)), h('th', {}, 'responses'))),
      h('tbody', {}, t.rows.map((row, i) => h('tr', {},
        h('td', { title: row.description ?? '' }, h('span', { class: 'swatch', style: { background: colors[i] } }), row.name, row.description ? h('div', { class: 'small muted' }, row.description) : ''),
        t.metrics.map((m) => h('td', { class: 'num' }, cell(row.values[m.key]))),
        h('td', { class: 'small' }, row.runs.length ? row.runs.map((run) => [h('a', { href: '#results', onclick: (e) => { e.preventDefault(); showResponses(r.root, base, row.name, run); } }, run.label), ' ']) : h('span', { class: 'muted' }, 'none'))))));
    const bars = barChart({
      title: t.kind === 'study-moi' ? 'accuracy per domain' : 'held-out accuracy (IFEval checker)',
      groups: t.metrics.map((m) => m.label),
      bars: t.rows.map((row) => ({ name: row.name, values: t.metrics.map((m) => row.values[m.key]?.mean ?? NaN), err: t.metrics.map((m) => row.values[m.key]?.std ?? 0) })),
      colors,
    });
    const names = t.rows.map((x) => x.name);
    const heat = (v) => (v === undefined ? '' : `hsl(${Math.round(120 * v)}, 60%, ${92 - 18 * v}%)`);
    const perType = h('table', { class: 'per-type' },
      h('thead', {}, h('tr', {}, h('th', {}, t.kind === 'study-moi' ? 'domain' : 'constraint type'), names.map((n) => h('th', { class: 'num' }, n)))),
      h('tbody', {}, t.perType.types.map((type) => h('tr', {}, h('td', { class: 'small' }, type),
        names.map((n) => h('td', { class: 'heat', style: { background: heat(t.perType.values[type]?.[n]) } }, fmt.pct(t.perType.values[type]?.[n])))))));
    const perK = t.perK ? h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'constraints per prompt'), names.map((n) => h('th', { class: 'num' }, n)))),
      h('tbody', {}, t.perK.ks.map((k) => h('tr', {}, h('td', {}, k), names.map((n) => h('td', { class: 'num' }, cell(t.perK.values[n]?.[k]))))))) : '';
    body.replaceChildren(
      h('div', { class: 'card' }, h('h2', {}, t.title), main,
        h('div', { class: 'small' }, 'files: ', t.files.map((f) => [h('a', { href: fileUrl(r.root, base + f), target: '_blank' }, f), ' '])),
        h('details', { class: 'small' }, h('summary', {}, 'settings'), h('pre', {}, JSON.stringify(t.settings, null, 2)))),
      bars,
      h('div', { class: 'card' }, h('h3', {}, t.perType.title), perType),
      perK ? h('div', { class: 'card' }, h('h3', {}, 'instruction-level strict accuracy by constraints per prompt (%)'), perK) : '');
  }

  async function showResponses(rootIndex, base, name, run) {
    responses.replaceChildren(h('div', { class: 'card' }, `loading ${name} ${run.label} …`));
    try {
      const get = async (p) => (await (await fetch(fileUrl(rootIndex, base + p))).text()).split('\n').filter((l) => l.trim()).map((l) => { try { return JSON.parse(l); } catch { return null; } });
      const rs = await get(run.responses);
      const tests = run.test ? await get(run.test) : [];
      const rows = rs.map((x, i) => {
        if (!x) return h('tr', {}, h('td', { colspan: 3, class: 'muted' }, 'malformed line'));
        const ids = tests[i]?.instruction_id_list ?? [];
        const verdict = Array.isArray(x.follow)
          ? x.follow.map((ok, j) => h('div', {}, h('span', { class: ok ? 'ok' : 'no' }, ok ? '✓' : '✗'), ' ', ids[j] ?? `constraint ${j + 1}`))
          : typeof x.correct === 'boolean' ? h('span', { class: x.correct ? 'ok' : 'no' }, x.correct ? '✓ correct' : '✗ wrong') : '';
        return h('tr', {}, h('td', { class: 'small' }, x.domain ? h('div', { class: 'muted' }, x.domain) : '', h('pre', {}, x.prompt ?? '')), h('td', {}, h('pre', {}, x.response ?? '')), h('td', { class: 'small' }, verdict));
      });
      const passed = rs.filter((x) => x && (Array.isArray(x.follow) ? x.follow.every(Boolean) : x.correct === true)).length;
      responses.replaceChildren(h('div', { class: 'card responses' },
        h('h3', {}, `${name} — ${run.label}: ${rs.length} responses, ${passed} fully right `, h('a', { href: fileUrl(rootIndex, base + run.responses), target: '_blank', class: 'small' }, 'responses.jsonl')),
        h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'prompt'), h('th', {}, 'response'), h('th', {}, 'verdict'))), h('tbody', {}, rows))));
    } catch (e) {
      responses.replaceChildren(errorBox(e));
    }
  }

  let first = true;
  return {
    show() {
      if (first) {
        first = false;
        loadList();
      }
    },
    changed(ids) {
      if (!first && ids.some((id) => id.startsWith('results:'))) loadList();
    },
  };
}
