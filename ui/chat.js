// Chat: talk to a model through the `mixtune serve` API mounted at /v1 — a conversation, or MISO
// generation (several inputs, one answer that attends to all of them). Answers stream in.
import { api, h, errorBox } from './util.js';

async function streamChat(body, onText) {
  const r = await fetch('/v1/chat/completions', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ ...body, stream: true }) });
  if (!r.ok) {
    let msg = `HTTP ${r.status}`;
    try { msg = (await r.json()).error.message; } catch { /* keep the status */ }
    throw new Error(msg);
  }
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  let finish = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const data = ev.replace(/^data: /, '');
      if (data === '[DONE]') return finish;
      const o = JSON.parse(data);
      if (o.error) throw new Error(o.error.message);
      const c = o.choices?.[0];
      if (c?.delta?.content) onText(c.delta.content);
      if (c?.finish_reason) finish = c.finish_reason;
    }
  }
  return finish;
}

export function createChatView(root, info) {
  let loaded = info.chat.loaded;
  let mode = 'chat';
  const messages = [];
  const status = h('span', { class: 'small muted model-status' });
  const modelSel = h('select', {}, info.chat.models.map((m) => h('option', { value: m.id }, m.label)));
  const loadBtn = h('button', { class: 'secondary', onclick: () => select(modelSel.value) }, 'load');
  const errors = h('div');
  const temp = h('input', { type: 'number', value: '0', min: '0', step: '0.1', style: { width: '70px' }, title: 'temperature (0 = greedy)' });
  const maxTok = h('input', { type: 'number', value: '64', min: '1', style: { width: '70px' }, title: 'max new tokens' });
  const system = h('input', { type: 'text', placeholder: 'system prompt (optional)', style: { width: '100%' } });
  const log = h('div', { class: 'chat-log' });
  const prompt = h('textarea', { rows: 2, placeholder: 'Message (Enter to send, Shift+Enter for a new line)', class: 'chat-input' });
  const send = h('button', { class: 'send' }, 'send');
  const inputs = h('div');
  const weighting = h('select', {}, ['uniform', 'fid', 'vanilla'].map((w) => h('option', {}, w)));
  const positions = h('select', {}, ['para', 'succ'].map((w) => h('option', {}, w)));
  const misoOut = h('div', { class: 'chat-log' });
  const chatPane = h('div', {}, system, h('div', { style: { height: '8px' } }), log, prompt, h('div', { class: 'toolbar', style: { marginTop: '6px' } }, send, h('button', { class: 'secondary', onclick: () => { messages.length = 0; log.replaceChildren(); } }, 'clear')));
  const misoBtn = h('button', { class: 'miso-send' }, 'generate from all inputs');
  const misoPane = h('div', { style: { display: 'none' } },
    h('p', { class: 'small muted' }, 'MISO generation: each input is its own user turn, encoded independently; one answer attends to all of them (combined by the weighting; para = every input from position 0, succ = successive positions).'),
    inputs, h('div', { class: 'toolbar' }, h('button', { class: 'secondary', onclick: () => addInput('') }, 'add input'), h('label', {}, 'weighting ', weighting), h('label', {}, 'positions ', positions), misoBtn), misoOut);

  function addInput(text) {
    const ta = h('textarea', { rows: 2, class: 'miso-text' });
    ta.value = text;
    const row = h('div', { class: 'miso-input' }, ta, h('button', { class: 'secondary', onclick: () => row.remove() }, '×'));
    inputs.append(row);
  }
  addInput('Tell me about a brave bird.');
  addInput('Use the word "tree" at least 2 times.');

  const setStatus = () => (status.textContent = loaded ? `loaded: ${loaded.label} (context ${loaded.context} tokens)` : 'no model loaded');
  setStatus();

  async function select(id) {
    errors.replaceChildren();
    loadBtn.disabled = true;
    status.textContent = 'loading …';
    try {
      loaded = (await api('/api/chat/model', { method: 'POST', body: JSON.stringify({ id }) })).loaded;
    } catch (e) {
      errors.replaceChildren(errorBox(e));
    }
    loadBtn.disabled = false;
    setStatus();
  }

  const params = () => ({ temperature: Number(temp.value), max_tokens: Math.max(1, Number(maxTok.value) || 64) });

  async function ensureModel() {
    if (!loaded && modelSel.value) await select(modelSel.value);
    if (!loaded) throw new Error('choose a model and load it first');
  }

  async function sendChat() {
    const text = prompt.value.trim();
    if (!text) return;
    errors.replaceChildren();
    send.disabled = true;
    try {
      await ensureModel();
      prompt.value = '';
      messages.push({ role: 'user', content: text });
      log.append(h('div', { class: 'msg user' }, text));
      const out = h('div', { class: 'msg assistant' });
      log.append(out);
      const msgs = system.value.trim() ? [{ role: 'system', content: system.value.trim() }, ...messages] : [...messages];
      let answer = '';
      const finish = await streamChat({ messages: msgs, ...params() }, (t) => { answer += t; out.textContent = answer; log.scrollTop = log.scrollHeight; });
      messages.push({ role: 'assistant', content: answer });
      out.title = `finish: ${finish}`;
      out.dataset.done = 'true';
    } catch (e) {
      errors.replaceChildren(errorBox(e));
    }
    send.disabled = false;
  }

  async function sendMiso() {
    const texts = [...inputs.querySelectorAll('textarea')].map((t) => t.value.trim()).filter(Boolean);
    if (!texts.length) return;
    errors.replaceChildren();
    misoBtn.disabled = true;
    try {
      await ensureModel();
      const out = h('div', { class: 'msg assistant miso-answer' });
      misoOut.replaceChildren(h('div', { class: 'msg user' }, texts.map((t, i) => h('div', {}, h('b', {}, `input ${i}: `), t))), out);
      let answer = '';
      await streamChat({ messages: [], mixtune: { inputs: texts.map((t) => [{ role: 'user', content: t }]), weighting: weighting.value, positions: positions.value }, ...params() },
        (t) => { answer += t; out.textContent = answer; });
      out.dataset.done = 'true';
    } catch (e) {
      errors.replaceChildren(errorBox(e));
    }
    misoBtn.disabled = false;
  }

  send.addEventListener('click', sendChat);
  misoBtn.addEventListener('click', sendMiso);
  prompt.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      sendChat();
    }
  });
  const modeBtn = (m, label) => h('label', {}, h('input', { type: 'radio', name: 'chat-mode', value: m, checked: m === mode, onchange: () => {
    mode = m;
    chatPane.style.display = m === 'chat' ? '' : 'none';
    misoPane.style.display = m === 'miso' ? '' : 'none';
  } }), ` ${label}`);
  root.append(h('div', { class: 'card' },
    h('div', { class: 'toolbar' }, info.chat.models.length ? [h('label', {}, 'model: ', modelSel), loadBtn] : h('span', { class: 'muted' }, 'no model: start mixtune ui with --model, or train a run (its final/ appears here)'), status),
    h('div', { class: 'toolbar' }, modeBtn('chat', 'conversation'), modeBtn('miso', 'MISO: several inputs, one answer'), h('label', {}, 'temperature ', temp), h('label', {}, 'max tokens ', maxTok)),
    errors, chatPane, misoPane));
  return {
    show() {
      const wanted = sessionStorage.getItem('mixtune-chat-model');
      if (wanted && info.chat.models.some((m) => m.id === wanted)) {
        sessionStorage.removeItem('mixtune-chat-model');
        modelSel.value = wanted;
        select(wanted);
      }
    },
  };
}
