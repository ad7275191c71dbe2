// `mixtune ui` without a browser: run discovery and status, tolerant metrics parsing, the files
// guard (traversal, encoded traversal, absolute paths, symlinks out), the attention pattern against
// the reference kernel, the API over HTTP (runs, metrics, results, rows, chat, live events) and the
// CLI's flag errors.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../src/util/paths.js';
import { parseMetrics, findRuns, readRun } from '../src/ui/runs.js';
import { resolveInside, rootOf } from '../src/ui/files.js';
import { attentionOf } from '../src/ui/rows.js';
import { UiServer } from '../src/ui/server.js';
import { readResults } from '../src/ui/results.js';
import { referenceKernels } from '../src/tensor/reference.js';
import type { Row } from '../src/data/pack.js';
import { assertOneLineError, runCli } from './util.js';

const examples = join(packageRoot(), 'examples');

/** A raw GET (the path is sent as written: fetch would normalize '..'). */
function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

function writeTrainRun(dir: string, o: { steps: number; total: number; finished: boolean; lock?: number }): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'run.json'), JSON.stringify({ fingerprint: 'x', settings: { 'recipe.name': 'sft', 'training.max_steps': o.total, 'training.lr': 0.002 }, started: '2026-01-01', finished: o.finished }));
  for (let s = 1; s <= o.steps; s++) appendFileSync(join(dir, 'metrics.jsonl'), JSON.stringify({ step: s, loss: 5 - s / 10, lr: 0.002, grad_norm: 1, tokens: 100, target_tokens: 50, tokens_per_s: 1000, elapsed: s }) + '\n');
  if (o.finished) writeFileSync(join(dir, 'summary.json'), JSON.stringify({ steps: o.steps, total_steps: o.total, tokens_per_s: 1234, final_loss: 4.2, eval_loss: 4.5, interrupted: false }));
  if (o.lock !== undefined) writeFileSync(join(dir, '.mixtune.lock'), JSON.stringify({ pid: o.lock, host: hostname(), started: '' }));
}

describe('metrics.jsonl', () => {
  test('malformed, foreign and torn lines are skipped and counted; eval lines apart', () => {
    const text = [
      '{"step":1,"loss":5,"lr":0.001,"grad_norm":2,"tokens":10,"target_tokens":5,"tokens_per_s":100,"elapsed":1}',
      'not json at all',
      '[1,2]',
      '{"step":2,"loss":"NaN?"}',
      '{"step":2,"loss":4,"lr":0.001,"grad_norm":1.5,"tokens":10,"target_tokens":5,"tokens_per_s":120,"elapsed":2}',
      '{"step":2,"eval_loss":4.5}',
      '{"step":3,"eval_loss":null}',
      '',
      '{"step":3,"loss":3.9',
    ].join('\n');
    const m = parseMetrics(text);
    assert.deepEqual(m.steps.map((s) => [s.step, s.loss, s.grad_norm]), [[1, 5, 2], [2, 4, 1.5]]);
    assert.deepEqual(m.evals, [{ step: 2, eval_loss: 4.5 }]);
    // three bad lines; the unterminated last line is still being written: not counted
    assert.equal(m.malformed, 3);
    assert.equal(parseMetrics(text + '\n').malformed, 4);
  });
});

describe('run folders', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'mixtune-ui-runs-'));
    writeTrainRun(join(dir, 'done'), { steps: 4, total: 4, finished: true });
    writeTrainRun(join(dir, 'live'), { steps: 2, total: 10, finished: false, lock: process.pid });
    writeTrainRun(join(dir, 'dead'), { steps: 2, total: 10, finished: false, lock: 2 ** 22 + 12345 });
    writeTrainRun(join(dir, 'nested', 'deeper', 'run'), { steps: 1, total: 1, finished: true });
    mkdirSync(join(dir, 'done', 'checkpoint-2'));
    writeFileSync(join(dir, 'done', 'checkpoint-2', 'metrics.jsonl'), '');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('found at any depth; status from lock, summary and run.json', () => {
    const root = rootOf(dir);
    const f = findRuns([root]);
    assert.deepEqual(f.runs.map((r) => r.path).sort(), ['dead', 'done', 'live', 'nested/deeper/run']);
    const by = Object.fromEntries(f.runs.map((r) => [r.path, readRun(root, 0, r.path)]));
    assert.equal(by.done!.status, 'finished');
    assert.equal(by.done!.tokensPerS, 1234);
    assert.equal(by.done!.evalLoss, 4.5);
    assert.equal(by.live!.status, 'running');
    assert.equal(by.live!.steps, 2);
    assert.equal(by.live!.totalSteps, 10);
    assert.equal(by.dead!.status, 'failed');
    assert.equal(by.live!.recipe, 'sft');
  });
});

describe('files guard', () => {
  let base: string;
  before(() => {
    base = mkdtempSync(join(tmpdir(), 'mixtune-ui-files-'));
    mkdirSync(join(base, 'runs', 'a'), { recursive: true });
    writeFileSync(join(base, 'runs', 'a', 'metrics.jsonl'), '{}\n');
    writeFileSync(join(base, 'secret.txt'), 'secret');
    symlinkSync(join(base, 'secret.txt'), join(base, 'runs', 'a', 'link-out.txt'));
    symlinkSync(join(base, 'runs', 'a', 'metrics.jsonl'), join(base, 'runs', 'link-in.jsonl'));
    symlinkSync(base, join(base, 'runs', 'dir-out'));
  });
  after(() => rmSync(base, { recursive: true, force: true }));

  test('only regular files inside the root', () => {
    const root = rootOf(join(base, 'runs'));
    assert.ok(resolveInside(root, 'a/metrics.jsonl'));
    assert.ok(resolveInside(root, 'link-in.jsonl'), 'a symlink that stays inside is followed');
    for (const bad of ['../secret.txt', 'a/../../secret.txt', '%2e%2e/secret.txt', '%2E%2E%2Fsecret.txt', 'a%2f..%2f..%2fsecret.txt', '..%5csecret.txt',
      'a/link-out.txt', 'dir-out/secret.txt', `${encodeURIComponent(join(base, 'secret.txt'))}`, '%00', 'a', '', 'a/%zz', 'nothing.txt']) {
      assert.equal(resolveInside(root, bad), null, bad);
    }
  });
});

describe('attention pattern', () => {
  /** A row of: a causal group of 3, a MISO group (inputs of 2 and 3 tokens, output of 3), a causal group of 2. */
  function row(): Row {
    const group = [0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2];
    const part = [0, 0, 0, 0, 0, 1, 1, 1, -1, -1, -1, 0, -1];
    const T = group.length;
    return {
      tokens: Int32Array.from({ length: T }, (_, i) => i), targets: new Int32Array(T).fill(-100), positions: new Int32Array(T), group: Int32Array.from(group), part: Int32Array.from(part),
      groups: [{ nInputs: 1, weighting: 'uniform' }, { nInputs: 2, weighting: 'fid' }, { nInputs: 1, weighting: 'uniform' }], length: T,
    };
  }

  test('the key ranges are exactly the keys the reference kernel gives weight to', () => {
    const r = row();
    const T = r.length;
    const { keys, rule } = attentionOf(r);
    // q = 0: every visible key gets a positive weight; v = one-hot of the key index
    const q = new Float32Array(T * T);
    const v = new Float32Array(T * T);
    for (let k = 0; k < T; k++) v[k * T + k] = 1;
    const out = new Float32Array(T * T);
    const stats = new Float32Array(T * 2);
    referenceKernels.attentionLayoutForward(q, q, v, out, stats, 1, T, 1, 1, T, 1, r.group, r.part, Int32Array.from(r.groups.map((g) => g.nInputs)),
      Int32Array.from(r.groups.map((g) => (g.weighting === 'fid' ? 1 : 0))), 2);
    for (let t = 0; t < T; t++) {
      const seen = new Set<number>();
      for (let i = 0; i < keys[t]!.length; i += 2) for (let k = keys[t]![i]!; k < keys[t]![i + 1]!; k++) seen.add(k);
      for (let k = 0; k < T; k++) assert.equal(out[t * T + k]! > 1e-6, seen.has(k), `query ${t} key ${k}`);
    }
    assert.deepEqual(rule, ['causal', 'causal', 'causal', 'input 0', 'input 0', 'input 1', 'input 1', 'input 1', 'fid over 2 inputs', 'fid over 2 inputs', 'fid over 2 inputs', 'causal', 'causal']);
  });
});

test('study moi results: the held-out prompt column appears with prompt_sensitivity, not without', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-ui-moi-'));
  try {
    const cfg = (avg: number, ps?: object) => ({ description: 'x', domains: { chat: avg, code: avg, math: avg, tool: avg }, avg, losses: [1], eval_loss: 1, tool_valid: 1, runs: [], ...(ps ? { prompt_sensitivity: ps } : {}) });
    writeFileSync(join(dir, 'results.json'), JSON.stringify({ configs: { moi: cfg(0.5), balanced: cfg(0.4) }, settings: { steps: 2, seeds: 1 } }));
    assert.ok(!readResults(dir, 'study-moi')!.metrics.some((m) => m.key === 'heldout'));
    const ps = { prompts: [{ chat: 'a', code: 'b', math: 'c', tool: 'd' }], avg_per_prompt: [0.3], mean: 0.3, std: 0.05, domains: { chat: 0.3, code: 0.3, math: 0.3, tool: 0.3 }, std_seeds: 0 };
    writeFileSync(join(dir, 'results.json'), JSON.stringify({ configs: { moi: cfg(0.5, ps), balanced: cfg(0.4) }, settings: { steps: 2, seeds: 1 } }));
    const t = readResults(dir, 'study-moi')!;
    assert.ok(t.metrics.some((m) => m.key === 'heldout'));
    assert.deepEqual(t.rows[0]!.values.heldout, { mean: 0.3, std: 0.05 });
    assert.equal(t.rows[1]!.values.heldout, null);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe('the UI server', () => {
  let dir: string;
  let server: UiServer;
  let port: number;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mixtune-ui-srv-'));
    writeTrainRun(join(dir, 'runs', 'alpha'), { steps: 3, total: 3, finished: true });
    appendFileSync(join(dir, 'runs', 'alpha', 'metrics.jsonl'), 'garbage line\n');
    writeFileSync(join(dir, 'outside.txt'), 'outside');
    symlinkSync(join(dir, 'outside.txt'), join(dir, 'runs', 'alpha', 'out.txt'));
    // a demo folder's results.json
    mkdirSync(join(dir, 'runs', 'demo', 'sft'), { recursive: true });
    writeFileSync(join(dir, 'runs', 'demo', 'results.json'), JSON.stringify({
      recipes: { base: { prompt_strict: 0.1, inst_strict: 0.2, prompt_loose: 0.1, inst_loose: 0.2, flatten_inst_strict: 0.3 }, sft: { prompt_strict: 0.2, inst_strict: 0.4, prompt_loose: 0.2, inst_loose: 0.4, flatten_inst_strict: 0.5 } },
      per_instruction_strict: { base: { 'keywords:existence': 0.5 }, sft: { 'keywords:existence': 0.75 } }, runs: {}, config: { steps: 3, batch: 4, seed: 0 }, data: {}, seconds: 1,
    }));
    writeFileSync(join(dir, 'runs', 'demo', 'sft', 'responses.jsonl'), '{"prompt":"p","response":"r","follow":[true]}\n');
    writeFileSync(join(dir, 'runs', 'demo', 'sft', 'metrics.jsonl'), '{"step":1,"loss":3,"lr":0.1,"grad_norm":1,"tokens":1,"target_tokens":1,"tokens_per_s":1,"elapsed":1}\n');
    server = new UiServer({ roots: [rootOf(join(dir, 'runs'))], configs: [join(examples, 'miso-para-stories260K.yaml')], model: { path: 'stories260K' }, pollMs: 100 });
    port = (await server.listen(0, '127.0.0.1')).port;
  });
  after(async () => {
    await server.shutdown();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the page and its assets; unknown URLs are JSON 404s', async () => {
    const page = await get(port, '/');
    assert.equal(page.status, 200);
    assert.match(page.body, /<script[^>]+\/assets\/app\.js/);
    assert.equal((await get(port, '/assets/app.js')).status, 200);
    const missing = await get(port, '/assets/../package.json');
    assert.equal(missing.status, 404);
    assert.equal(JSON.parse(missing.body).error.code, 'not_found');
    assert.equal((await get(port, '/nope')).status, 404);
  });

  test('another Host is refused (DNS rebinding)', async () => {
    const r = await get(port, '/api/runs', { Host: 'evil.example:80' });
    assert.equal(r.status, 403);
    assert.equal(JSON.parse(r.body).error.code, 'forbidden_host');
  });

  test('runs, metrics with a malformed line, results', async () => {
    const runs = JSON.parse((await get(port, '/api/runs')).body) as { runs: { id: string; status: string }[]; results: { id: string; kind: string }[] };
    assert.deepEqual(runs.runs.map((r) => r.id).sort(), ['0/alpha', '0/demo/sft']);
    assert.deepEqual(runs.results.map((r) => [r.id, r.kind]), [['0/demo', 'demo']]);
    const m = JSON.parse((await get(port, '/api/metrics?run=' + encodeURIComponent('0/alpha'))).body) as { steps: unknown[]; malformed: number };
    assert.equal(m.steps.length, 3);
    assert.equal(m.malformed, 1);
    assert.equal((await get(port, '/api/metrics?run=0/..')).status, 404);
    const res = JSON.parse((await get(port, '/api/results?id=0/demo')).body) as { table: { rows: { name: string; runs: { responses: string }[] }[]; perType: { types: string[] } } };
    assert.deepEqual(res.table.rows.map((r) => r.name), ['base', 'sft']);
    assert.equal(res.table.rows[1]!.runs[0]!.responses, 'sft/responses.jsonl');
    assert.deepEqual(res.table.perType.types, ['keywords:existence']);
  });

  test('files: inside yes; traversal, encoded traversal, absolute, symlink out: 404', async () => {
    const ok = await get(port, '/files/0/alpha/summary.json');
    assert.equal(ok.status, 200);
    assert.match(String(ok.headers['content-security-policy']), /sandbox/);
    for (const p of ['/files/0/../outside.txt', '/files/0/alpha/../../outside.txt', '/files/0/%2e%2e/outside.txt', '/files/0/%2e%2e%2foutside.txt', '/files/0/alpha/out.txt',
      `/files/0/${encodeURIComponent(join(dir, 'outside.txt'))}`, `/files/0/${join(dir, 'outside.txt')}`, '/files/1/x', '/files/0/', '/files/0/alpha']) {
      const r = await get(port, p);
      assert.equal(r.status, 404, p);
      assert.doesNotMatch(r.body, /outside/);
    }
  });

  test('rows: a MISO config, a row with its attention; bad parameters are 400', async () => {
    const view = JSON.parse((await get(port, '/api/rows?config=0&variant=config')).body) as { recipe: string; train: { kinds: string[] }[] };
    assert.equal(view.recipe, 'miso-para');
    assert.match(view.train[0]!.kinds[0]!, /^MISO n=\d uniform$/);
    const row = JSON.parse((await get(port, '/api/row?config=0&variant=config&split=train&row=0')).body) as { text: string[]; part: number[]; loss: boolean[]; rule: string[] };
    assert.equal(row.text.length, row.part.length);
    assert.ok(row.part.includes(-1) && row.part.includes(1));
    assert.ok(row.loss.some((x, t) => x && row.part[t] === -1));
    assert.ok(row.rule.includes('uniform over ' + (Math.max(...row.part) + 1) + ' inputs'));
    const succ = JSON.parse((await get(port, '/api/rows?config=0&variant=miso-succ')).body) as { recipe: string };
    assert.equal(succ.recipe, 'miso-succ');
    for (const p of ['/api/rows?config=5&variant=config', '/api/rows?config=0&variant=nope', '/api/row?config=0&variant=config&split=train&row=99999', '/api/rows?variant=config']) {
      const r = await get(port, p);
      assert.equal(r.status, 400, p);
      assert.ok(JSON.parse(r.body).error.message);
    }
  });

  test('chat: no model loaded is a 409; --model loads and answers through the serve code, also MISO', async () => {
    const base = `http://127.0.0.1:${port}`;
    const before = await fetch(`${base}/v1/chat/completions`, { method: 'POST', body: '{}', headers: { 'Content-Type': 'application/json' } });
    assert.equal(before.status, 409);
    const sel = await fetch(`${base}/api/chat/model`, { method: 'POST', body: JSON.stringify({ id: 'model' }) });
    assert.equal(sel.status, 200);
    const r = await fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 8, temperature: 0 }) });
    const body = await r.json() as { choices: { message: { content: string } }[]; usage: { completion_tokens: number } };
    assert.equal(r.status, 200);
    assert.ok(body.usage.completion_tokens > 0);
    const miso = await fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({
      messages: [], max_tokens: 6, temperature: 0, mixtune: { inputs: [[{ role: 'user', content: 'Tell a story.' }], [{ role: 'user', content: 'Use the word "tree".' }]], weighting: 'uniform', positions: 'para' },
    }) });
    assert.equal(miso.status, 200, await miso.clone().text());
    const unknown = await fetch(`${base}/api/chat/model`, { method: 'POST', body: JSON.stringify({ id: '/etc' }) });
    assert.equal(unknown.status, 404);
  });

  test('live: a new metrics line is announced on /api/events', async () => {
    const ac = new AbortController();
    const res = await fetch(`http://127.0.0.1:${port}/api/events`, { signal: ac.signal });
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    let text = '';
    await reader.read(); // retry line
    appendFileSync(join(dir, 'runs', 'alpha', 'metrics.jsonl'), JSON.stringify({ step: 4, loss: 3, lr: 0.001, grad_norm: 1, tokens: 1, target_tokens: 1, tokens_per_s: 1, elapsed: 4 }) + '\n');
    const deadline = Date.now() + 5000;
    while (!text.includes('event: change') && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      text += dec.decode(value);
    }
    ac.abort();
    assert.match(text, /event: change\ndata: .*"0\/alpha"/);
  });
});

describe('mixtune ui flags', () => {
  test('bad flags are one-line errors', () => {
    assertOneLineError(runCli('ui', '--runs', '/nonexistent/runs'), ['--runs', 'no such folder']);
    assertOneLineError(runCli('ui', '--port', '70000'), ['--port', '65535']);
    assertOneLineError(runCli('ui', '--port', 'x'), ['--port']);
    assertOneLineError(runCli('ui', '--config', '/nonexistent.yaml'), ['--config', 'no such file']);
    assertOneLineError(runCli('ui', '--tokenizer', 'x'), ['--tokenizer', '--model']);
  });
});
