import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTrainConfig, validateTrainConfig } from '../src/train/config.js';
import { learningRate, warmupStepsOf } from '../src/train/schedule.js';
import { MixtuneError } from '../src/util/errors.js';

const tmp = mkdtempSync(join(tmpdir(), 'mixtune-cfg-'));

test('train config: defaults, relative paths, --set overrides', () => {
  const p = join(tmp, 'train.yaml');
  writeFileSync(p, 'model: m.bin\ndata:\n  datasets:\n    - path: d.jsonl\n      domain: math\ntraining:\n  lr: 1e-3\n');
  const c = loadTrainConfig(p, ['training.max_steps=7', 'data.max_len=128', 'lora.rank=4']);
  assert.equal(c.model, join(tmp, 'm.bin'));
  assert.equal(c.data.datasets[0]!.path, join(tmp, 'd.jsonl'));
  assert.equal(c.data.datasets[0]!.domain, 'math');
  assert.equal(c.training.lr, 1e-3);
  assert.equal(c.training.max_steps, 7);
  assert.equal(c.data.max_len, 128);
  assert.equal(c.training.schedule, 'cosine');
  assert.equal(c.recipe.name, 'sft');
  assert.equal(c.lora!.rank, 4);
  assert.deepEqual(c.lora!.targets, ['q', 'v']);
});

test('train config: unknown keys and wrong types name their key path', () => {
  const bad = (raw: unknown, re: RegExp): void => {
    assert.throws(() => validateTrainConfig(raw, 'train.yaml'), (e: unknown) => e instanceof MixtuneError && re.test(e.message) && e.message.startsWith('train.yaml: '));
  };
  const base = { model: 'm', data: { datasets: [{ path: 'd.jsonl' }] } };
  bad({ ...base, training: { lr: 'fast' } }, /training\.lr: .*expected number/);
  bad({ ...base, training: { learning_rate: 1 } }, /unknown key training\.learning_rate/);
  bad({ ...base, bogus: 1 }, /unknown key bogus/);
  bad({ ...base, data: { datasets: [{ path: 'd', colour: 'red' }] } }, /unknown key data\.datasets\.0\.colour/);
  bad({ data: base.data }, /model: required key is missing/);
  bad({ ...base, data: { datasets: [] } }, /data\.datasets/);
  bad({ ...base, training: { warmup_ratio: 0.1, warmup_steps: 3 } }, /warmup_ratio or warmup_steps/);
  bad({ ...base, recipe: { name: 'magic' } }, /recipe\.name/);
});

test('schedules: warmup then cosine / linear / constant to min_lr', () => {
  const o = { lr: 1, totalSteps: 110, warmupSteps: 10, minLrRatio: 0.1 };
  assert.equal(learningRate(5, { ...o, kind: 'cosine' }), 0.5);
  assert.equal(learningRate(10, { ...o, kind: 'cosine' }), 1);
  assert.equal(learningRate(11, { ...o, kind: 'cosine' }), 1, 'the first decay step runs at the peak');
  assert.ok(Math.abs(learningRate(61, { ...o, kind: 'cosine' }) - 0.55) < 1e-12);
  assert.ok(Math.abs(learningRate(110, { ...o, kind: 'cosine' }) - (0.1 + 0.45 * (1 + Math.cos(Math.PI * 0.99)))) < 1e-12);
  assert.ok(Math.abs(learningRate(61, { ...o, kind: 'linear' }) - 0.55) < 1e-12);
  assert.ok(Math.abs(learningRate(110, { ...o, kind: 'linear' }) - (0.1 + 0.9 * 0.01)) < 1e-12);
  assert.equal(learningRate(100, { ...o, kind: 'constant' }), 1);
  assert.equal(warmupStepsOf(200, { ratio: 0.05 }), 10);
  assert.equal(warmupStepsOf(200, { steps: 7 }), 7);
  assert.equal(warmupStepsOf(5, { steps: 7 }), 5);
});

test('schedule: every step of every schedule has a learning rate > 0 (1, 2 and 10 steps, with and without warmup)', () => {
  for (const kind of ['cosine', 'linear', 'constant'] as const) {
    for (const total of [1, 2, 10]) {
      for (const warm of [0, 1, 3]) {
        const o = { lr: 1e-3, totalSteps: total, warmupSteps: Math.min(total, warm), kind, minLrRatio: 0 };
        for (let s = 1; s <= total; s++) assert.ok(learningRate(s, o) > 0, `${kind}, ${total} steps, warmup ${warm}: step ${s} has lr ${learningRate(s, o)}`);
      }
    }
  }
});
