import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LlamaModel } from '../src/model/llama.js';
import { nativeKernels } from '../src/tensor/native.js';
import { loadLlama2c } from '../src/io/llama2c.js';
import { Llama2cTokenizer } from '../src/io/llama2c-tokenizer.js';
import { Trainer, type TrainerOptions } from '../src/train/trainer.js';
import { prepareRows, type ExampleEncoder } from '../src/train/prepare.js';
import { validateTrainConfig } from '../src/train/config.js';
import { listCheckpoints } from '../src/train/checkpoint.js';
import { IGNORE } from '../src/data/pack.js';
import { sharedDir } from '../src/util/paths.js';

const fix = join(sharedDir(), 'fixtures', 'stories260K');
const tmp = mkdtempSync(join(tmpdir(), 'mixtune-trainer-'));

const dataPath = join(tmp, 'stories.jsonl');
const names = ['Lily', 'Tom', 'Ben', 'Sue', 'Max', 'Mia', 'Sam', 'Ann'];
const things = ['a red ball', 'a big dog', 'a small cat', 'a blue car', 'a tall tree', 'a happy bird'];
const lines: string[] = [];
for (let i = 0; i < 48; i++) {
  const n = names[i % names.length]!;
  const t = things[i % things.length]!;
  lines.push(JSON.stringify({ messages: [{ role: 'user', content: `Tell a story about ${n}.` }, { role: 'assistant', content: `${n} saw ${t}. ${n} was very happy and played all day.` }] }));
}
writeFileSync(dataPath, lines.join('\n') + '\n');

function setup(): { model: LlamaModel; encode: ExampleEncoder } {
  const { config, weights } = loadLlama2c(join(fix, 'stories260K.bin'));
  const model = new LlamaModel(config, nativeKernels(), weights);
  const tok = Llama2cTokenizer.load(join(fix, 'tok512.bin'), config.vocabSize);
  const encode: ExampleEncoder = (ex) => {
    const prompt = [tok.bosId, ...tok.encode(ex.messages[0]!.content)];
    const answer = [...tok.encode(ex.messages[1]!.content), tok.eosId];
    return { ids: [...prompt, ...answer], labels: [...prompt.map(() => IGNORE), ...answer] };
  };
  return { model, encode };
}

function options(out: string, over: Partial<TrainerOptions> = {}): TrainerOptions {
  return {
    outputDir: out, seed: 3, totalSteps: 8, microBatchSize: 2, gradAccum: 2, lr: 3e-3, warmupSteps: 2, schedule: 'cosine',
    minLrRatio: 0.1, weightDecay: 0.01, beta1: 0.9, beta2: 0.99, eps: 1e-8, maxGradNorm: 1, logEvery: 1, evalEvery: 4, saveEvery: 0,
    keepLast: 2, padId: 0, progress: false, log: () => {}, ...over,
  };
}

const cfg = validateTrainConfig({ model: 'x', data: { datasets: [{ path: dataPath }], max_len: 128, eval_split: 0.1 } }, 'test');

test('trainer: loss decreases; metrics.jsonl has step, loss, lr, grad_norm, tokens/s, elapsed', () => {
  const { model, encode } = setup();
  const prep = prepareRows(cfg, encode);
  assert.ok(prep.stats.train.efficiency > 0.8, 'rows hold several packed examples');
  assert.equal(prep.stats.evalExamples, 5);
  const out = join(tmp, 'run-a');
  const tr = new Trainer(model, model.params, prep.train, prep.eval, options(out, { totalSteps: 12 }));
  const before = tr.evaluate()!;
  const r = tr.run();
  assert.equal(r.steps, 12);
  assert.ok(r.evalLoss! < before, `eval loss ${r.evalLoss} should fall below ${before}`);
  assert.ok(r.losses[11]! < r.losses[0]!, `loss ${r.losses[0]} -> ${r.losses[11]}`);
  const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
  const steps = lines.filter((l) => 'loss' in l);
  assert.equal(steps.length, 12);
  for (const k of ['step', 'loss', 'lr', 'grad_norm', 'tokens_per_s', 'elapsed', 'tokens']) assert.ok(k in steps[0]!, k);
  assert.ok(lines.some((l) => 'eval_loss' in l));
  assert.ok(steps[0]!.lr! < steps[2]!.lr!, 'warmup');
});

test('trainer: 2N steps in one run == N steps, stop, resume for N more (losses and weights)', () => {
  const a = setup();
  const prep = prepareRows(cfg, a.encode);
  const full = new Trainer(a.model, a.model.params, prep.train, prep.eval, options(join(tmp, 'full')));
  const fullRun = full.run();

  const b = setup();
  const out = join(tmp, 'split');
  const first = new Trainer(b.model, b.model.params, prep.train, prep.eval, options(out, { stopAfter: 4 }));
  const r1 = first.run();
  assert.equal(r1.steps, 4);
  assert.deepEqual(listCheckpoints(out).map((c) => c.step), [4]);

  const c = setup(); // a fresh process would start from the base weights again
  const second = new Trainer(c.model, c.model.params, prep.train, prep.eval, options(out));
  const r2 = second.run(listCheckpoints(out)[0]!.path);
  assert.equal(r2.steps, 8);
  const resumed = [...r1.losses, ...r2.losses];
  assert.equal(resumed.length, 8);
  for (let i = 0; i < 8; i++) {
    assert.ok(Math.abs(resumed[i]! - fullRun.losses[i]!) <= 1e-6 * Math.abs(fullRun.losses[i]!), `step ${i + 1}: ${resumed[i]} vs ${fullRun.losses[i]}`);
  }
  for (const [name, t] of a.model.params) assert.deepEqual(c.model.param(name).data, t.data, name);
  const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number; loss?: number });
  assert.deepEqual(metrics.filter((m) => m.loss !== undefined).map((m) => m.step), [1, 2, 3, 4, 5, 6, 7, 8]);
});

test('trainer: keeps the last K checkpoints; resume refuses different data', () => {
  const a = setup();
  const prep = prepareRows(cfg, a.encode);
  const out = join(tmp, 'keep');
  new Trainer(a.model, a.model.params, prep.train, prep.eval, options(out, { saveEvery: 2, keepLast: 2 })).run();
  assert.deepEqual(listCheckpoints(out).map((c) => c.step), [4, 6]);
  assert.ok(existsSync(join(out, 'checkpoint-6', 'model.safetensors')));
  const b = setup();
  const other = new Trainer(b.model, b.model.params, prep.train.slice(1), prep.eval, options(out));
  assert.throws(() => other.run(join(out, 'checkpoint-6')), /different prepared data/);
});
