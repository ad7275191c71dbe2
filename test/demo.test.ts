import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDemoCli } from '../src/cli/demo.js';
import { parseRecipes } from '../src/demo/run.js';
import { flattenRecords, scoreResponses, METRIC_KEYS, type EvalRecord } from '../src/demo/eval.js';
import { defaultIfevalNlp } from '../src/eval/ifeval/run.js';
import { buildProgram } from '../src/cli/main.js';
import { MixtuneError } from '../src/util/errors.js';
import { assertWellFormedSvg } from './util.js';
import { hasBf16 } from '../src/tensor/bf16.js';

test('demo: flattened scoring builds one prompt per constraint and checks only that instruction', () => {
  const nlp = defaultIfevalNlp();
  const recs: EvalRecord[] = [{
    instruction: 'Tell me about a cat.',
    constraints: ['Do not use any commas.', 'Include the word "ball".'],
    instruction_id_list: ['punctuation:no_comma', 'keywords:existence'],
    kwargs: [{}, { keywords: ['ball'] }],
    prompt: 'Tell me about a cat. Do not use any commas. Include the word "ball".',
  }];
  const flat = flattenRecords(recs);
  assert.deepEqual(flat.map((f) => f.prompt), ['Tell me about a cat. Do not use any commas.', 'Tell me about a cat. Include the word "ball".']);
  assert.deepEqual(flat.map((f) => f.id), recs[0]!.instruction_id_list);
  // full response follows only the first; flat responses: the first has a comma (fails), the
  // second lacks commas but has "ball" (passes: the comma rule is not checked there)
  const s = scoreResponses(recs, ['The cat sat.'], ['The cat, the dog.', 'The cat has a ball, yes.'], nlp);
  assert.equal(s.metrics.prompt_strict, 0);
  assert.equal(s.metrics.inst_strict, 0.5);
  assert.deepEqual(s.flat, [false, true]);
  assert.equal(s.metrics.flatten_inst_strict, 0.5);
  const all = scoreResponses(recs, ['The cat has a ball.'], ['The cat.', 'A ball.'], nlp);
  assert.equal(all.metrics.prompt_strict, 1);
  assert.equal(all.metrics.flatten_inst_strict, 1);
});

test('demo: recipe list validation and command registration', () => {
  assert.deepEqual(parseRecipes('sft, miso-para'), ['sft', 'miso-para']);
  assert.throws(() => parseRecipes('sft,foo'), (e: unknown) => e instanceof MixtuneError && /unknown recipe 'foo'/.test(e.message));
  assert.throws(() => parseRecipes('sft,sft'), MixtuneError);
  const names = buildProgram().commands.map((c) => c.name());
  assert.ok(names.includes('demo') && names.includes('synth'));
  const synth = buildProgram().commands.find((c) => c.name() === 'synth')!;
  assert.ok(synth.commands.some((c) => c.name() === 'constraints'));
});

test('demo: a tiny run writes results.json (base + recipes, fractions), metrics, responses and loss.svg', async () => {
  const out = mkdtempSync(join(tmpdir(), 'mixtune-demo-'));
  let printed = '';
  await runDemoCli({ out, recipes: 'sft,miso-para', steps: 3, seed: 0, nTrain: 24, nTest: 6, maxNewTokens: 24, batch: 4, lr: 3e-3, progress: false }, (s) => { printed += s; });
  const res = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as {
    recipes: Record<string, Record<string, number>>; base_test_loss: number;
    runs: Record<string, { trained_tokens: number; processed_tokens: number; steps: number; test_loss: number }>;
  };
  assert.deepEqual(Object.keys(res.recipes), ['base', 'sft', 'miso-para']);
  for (const m of Object.values(res.recipes)) {
    assert.deepEqual(Object.keys(m).sort(), [...METRIC_KEYS].sort());
    for (const v of Object.values(m)) assert.ok(typeof v === 'number' && v >= 0 && v <= 1, String(v));
  }
  // same token budget: the same examples' responses are trained under both recipes
  assert.equal(res.runs.sft!.trained_tokens, res.runs['miso-para']!.trained_tokens);
  assert.ok(res.runs['miso-para']!.processed_tokens > res.runs.sft!.processed_tokens);
  // the held-out test loss (full prompt, teacher forcing) is measured for the base model and every run
  for (const x of [res.base_test_loss, res.runs.sft!.test_loss, res.runs['miso-para']!.test_loss]) assert.ok(Number.isFinite(x) && x > 0, String(x));
  for (const r of ['sft', 'miso-para']) {
    const lines = readFileSync(join(out, r, 'metrics.jsonl'), 'utf8').trim().split('\n');
    assert.equal(lines.length, 3);
    assert.ok(existsSync(join(out, r, 'responses.jsonl')));
    assert.ok(existsSync(join(out, r, 'final', 'model.safetensors')));
  }
  assert.equal(readFileSync(join(out, 'data', 'test.jsonl'), 'utf8').trim().split('\n').length, 6);
  assertWellFormedSvg(readFileSync(join(out, 'loss.svg'), 'utf8'));
  assert.match(printed, /prompt strict/);
  assert.match(printed, /miso-para/);
});

test('demo --precision bf16: the runs train with bf16 GEMMs (losses close to fp32, not equal) and results.json says so; --bf16-ops picks the products', { skip: hasBf16() ? false : 'no bf16 instructions' }, async () => {
  const run = async (precision: 'fp32' | 'bf16', bf16Ops?: string) => {
    const out = mkdtempSync(join(tmpdir(), 'mixtune-demo-'));
    await runDemoCli({ out, recipes: 'sft', steps: 4, seed: 0, nTrain: 24, nTest: 4, maxNewTokens: 8, batch: 4, lr: 3e-3, precision, ...(bf16Ops ? { bf16Ops } : {}), progress: false }, () => {});
    const res = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { config: { precision: string; bf16_ops?: string[] } };
    const losses = readFileSync(join(out, 'sft', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { loss: number }).loss);
    return { precision: res.config.precision, ops: res.config.bf16_ops, losses };
  };
  const f = await run('fp32');
  const b = await run('bf16');
  assert.equal(f.precision, 'fp32');
  assert.equal(b.precision, 'bf16');
  assert.equal(b.ops, undefined);
  assert.notDeepEqual(b.losses, f.losses, 'bf16 GEMMs change the arithmetic');
  b.losses.forEach((l, i) => assert.ok(Math.abs(l - f.losses[i]!) < 0.02 * f.losses[i]!, `step ${i + 1}: ${l} vs ${f.losses[i]}`));
  // --bf16-ops: only the backward GEMMs in bf16 — step 1 (same weights, fp32 forward) is fp32's loss exactly
  const w = await run('bf16', 'linear_input_grad,linear_weight_grad');
  assert.deepEqual(w.ops, ['linear_input_grad', 'linear_weight_grad']);
  assert.equal(w.losses[0], f.losses[0]);
  assert.notDeepEqual(w.losses, f.losses, 'later steps follow bf16 gradients');
});
