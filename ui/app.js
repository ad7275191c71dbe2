// The page: tabs (hash routing), the info the server gives once, and the live event stream.
import { createRunsView } from './runs.js';
import { createResultsView } from './results.js';
import { createRowsView } from './rows.js';
import { createChatView } from './chat.js';
import { api } from './util.js';

const views = {};

function show(name) {
  if (!views[name]) name = 'runs';
  for (const [n, v] of Object.entries(views)) {
    document.getElementById(`view-${n}`).classList.toggle('active', n === name);
    document.querySelector(`nav a[data-view="${n}"]`).classList.toggle('active', n === name);
    if (n === name) v.show();
  }
}

async function start() {
  const info = await api('/api/info');
  views.runs = createRunsView(document.getElementById('view-runs'), info);
  views.results = createResultsView(document.getElementById('view-results'), info);
  views.rows = createRowsView(document.getElementById('view-rows'), info);
  views.chat = createChatView(document.getElementById('view-chat'), info);
  window.addEventListener('hashchange', () => show(location.hash.slice(1)));
  show(location.hash.slice(1) || 'runs');
  const live = document.getElementById('live');
  const es = new EventSource('/api/events');
  es.addEventListener('open', () => live.classList.add('on'));
  es.addEventListener('error', () => live.classList.remove('on'));
  es.addEventListener('change', (e) => {
    const { changed } = JSON.parse(e.data);
    views.runs.changed(changed);
    views.results.changed(changed);
  });
}

start().catch((e) => {
  document.querySelector('main').innerHTML = `<div class="error">${String(e.message || e)}</div>`;
});
