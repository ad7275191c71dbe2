import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { synthesizeConstraints, comboKey, splitOfCombo, verifyRecord, SYNTH_CONSTRAINT_IDS, type SynthRecord } from '../src/synth/constraints.js';
import { runSynthConstraints } from '../src/cli/synth.js';
import { readDataset, composeInstruction } from '../src/data/readers.js';
import { evaluate } from '../src/eval/ifeval/score.js';
import { defaultIfevalNlp } from '../src/eval/ifeval/run.js';
import { MixtuneError } from '../src/util/errors.js';

const nlp = defaultIfevalNlp();

test('synth constraints: every example passes the IFEval checker (strict) and is well-formed', () => {
  for (const split of ['train', 'test'] as const) {
    const r = synthesizeConstraints({ n: split === 'train' ? 300 : 150, seed: 7, split, nlp });
    assert.ok(r.records.length + r.dropped === (split === 'train' ? 300 : 150));
    assert.ok(r.dropped <= 3, `dropped ${r.dropped}`);
    for (const rec of r.records) {
      const res = evaluate({ prompt: rec.prompt, instruction_id_list: rec.instruction_id_list, kwargs: rec.kwargs }, rec.output, nlp, 'strict');
      assert.ok(res.follow_all_instructions, `${rec.id}: ${JSON.stringify(rec)}`);
      assert.equal(rec.constraints.length, rec.instruction_id_list.length);
      assert.equal(rec.kwargs.length, rec.instruction_id_list.length);
      assert.equal(rec.prompt, composeInstruction(rec.instruction, rec.constraints));
      assert.equal(new Set(rec.instruction_id_list).size, rec.instruction_id_list.length);
      for (const id of rec.instruction_id_list) assert.ok((SYNTH_CONSTRAINT_IDS as readonly string[]).includes(id));
      const k = rec.instruction_id_list.length;
      if (split === 'train') assert.ok(k >= 1 && k <= 3);
      else assert.ok(k >= 2 && k <= 4);
      assert.equal(splitOfCombo(rec.instruction_id_list), split);
    }
  }
});

test('synth constraints: a broken response fails verification (the check can fail)', () => {
  const rec = synthesizeConstraints({ n: 40, seed: 3, nlp }).records.find((r) => r.instruction_id_list.includes('punctuation:no_comma') || r.instruction_id_list.includes('startend:quotation'))!;
  assert.ok(rec);
  assert.ok(verifyRecord(rec, nlp));
  assert.equal(verifyRecord({ ...rec, output: `, ${rec.output.replace(/^"/, '')}` }, nlp), false);
});

test('synth constraints: deterministic per seed, different across seeds and splits', () => {
  const a = synthesizeConstraints({ n: 50, seed: 11, nlp }).records;
  const b = synthesizeConstraints({ n: 50, seed: 11, nlp }).records;
  const c = synthesizeConstraints({ n: 50, seed: 12, nlp }).records;
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.map((r) => r.output), c.map((r) => r.output));
  const t = synthesizeConstraints({ n: 50, seed: 11, split: 'test', nlp }).records;
  assert.notDeepEqual(a.map((r) => r.prompt), t.map((r) => r.prompt));
});

test('synth constraints: the test split holds unseen combinations, including 4-constraint prompts', () => {
  const train = synthesizeConstraints({ n: 400, seed: 1, nlp }).records;
  const test = synthesizeConstraints({ n: 30, seed: 1, split: 'test', nlp }).records;
  const trainCombos = new Set(train.map((r) => comboKey(r.instruction_id_list)));
  for (const r of test) assert.ok(!trainCombos.has(comboKey(r.instruction_id_list)), comboKey(r.instruction_id_list));
  assert.ok(test.some((r) => r.instruction_id_list.length === 4));
  assert.ok(Math.max(...train.map((r) => r.instruction_id_list.length)) <= 3);
  // all single constraints are trained
  const singles = new Set(train.filter((r) => r.instruction_id_list.length === 1).map((r) => r.instruction_id_list[0]));
  assert.equal(singles.size, SYNTH_CONSTRAINT_IDS.length);
  // a tiny test split already holds a 4-constraint prompt
  const small = synthesizeConstraints({ n: 3, seed: 2, split: 'test', nlp }).records;
  assert.ok(small.some((r) => r.instruction_id_list.length === 4));
});

test('synth constraints: records read as format constraints (base + constraints) and keep ids/kwargs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-synth-'));
  const out = join(dir, 'train.jsonl');
  const testOut = join(dir, 'test.jsonl');
  let logged = '';
  runSynthConstraints({ n: 20, seed: 5, out, split: 'train', testOut, nTest: 6 }, (s) => { logged += s; });
  assert.match(logged, /train 20 examples/);
  assert.match(logged, /test 6 examples/);
  const recs = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as SynthRecord);
  assert.equal(recs.length, 20);
  for (const k of ['instruction', 'constraints', 'output', 'instruction_id_list', 'kwargs', 'prompt']) assert.ok(k in recs[0]!, k);
  const ds = readDataset(out, { format: 'constraints' });
  assert.equal(ds.examples.length, 20);
  ds.examples.forEach((ex, i) => {
    assert.equal(ex.base, recs[i]!.instruction);
    assert.deepEqual(ex.constraints, recs[i]!.constraints);
    assert.equal(ex.messages[0]!.content, recs[i]!.prompt);
    assert.equal(ex.messages[1]!.content, recs[i]!.output);
  });
  assert.equal(readFileSync(testOut, 'utf8').trim().split('\n').length, 6);
  assert.throws(() => synthesizeConstraints({ n: 5, seed: 0, split: 'train', maxConstraints: 4, nlp }), MixtuneError);
});
