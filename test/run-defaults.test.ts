// Issue 12, "runs that silently do nothing or the wrong thing" and "data lost without a word":
// absent sections get their defaults, every step moves the weights, the default learning rate
// depends on what is trained, data cut by max_len is announced with the fix, positions beyond the
// model's context are refused, and MISO groups are capped by default.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateTrainConfig } from '../src/train/config.js';
import { trainFromConfig } from '../src/train/run.js';
import { prepareRows } from '../src/train/prepare.js';
import { encoderFor } from '../src/train/setup.js';
import { checkModelAndTokenizer } from '../src/io/load.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { loadLlama2c } from '../src/io/llama2c.js';
import { resolveModelRef } from '../src/io/model-ref.js';
import { packageRoot, sharedDir } from '../src/util/paths.js';
import { MixtuneError } from '../src/util/errors.js';

const GSM = join(packageRoot(), 'examples', 'data', 'gsm8k-train-200.jsonl');
const gsm = { path: GSM, columns: { prompt: 'question', completion: 'answer' }, limit: 40 };
const quiet = { progress: false, log: () => {} };

test('config: absent sections get the same defaults as empty ones (training, export, recipe)', () => {
  const minimal = validateTrainConfig({ model: 'stories260K', data: { datasets: [{ path: 'd.jsonl' }] } }, 'train.yaml', '/x');
  const empty = validateTrainConfig({ model: 'stories260K', data: { datasets: [{ path: 'd.jsonl' }] }, training: {}, export: {}, recipe: { name: 'sft' } }, 'train.yaml', '/x');
  assert.deepEqual(minimal, empty);
  assert.equal(minimal.training.epochs, 1);
  assert.equal(minimal.training.micro_batch_size, 1);
  assert.equal(minimal.training.schedule, 'cosine');
  assert.equal(minimal.export.dtype, 'f32');
});

test('train: a config without a training section trains one epoch and exports final/', async () => {
  const out = mkdtempSync(join(tmpdir(), 'mixtune-defaults-'));
  const cfg = validateTrainConfig({ model: 'stories260K', output_dir: out, data: { datasets: [{ ...gsm, limit: 12 }], max_len: 512 } }, 'train.yaml', '/');
  const s = await trainFromConfig(cfg, quiet);
  assert.ok(Number.isInteger(s.total_steps) && s.total_steps > 0, `total_steps ${s.total_steps}`);
  assert.equal(s.steps, s.total_steps);
  assert.ok(s.exported, 'no final/');
});

test('train: a 1-step run changes the weights (the last step does not run at lr 0); the default lr is logged', async () => {
  const out = mkdtempSync(join(tmpdir(), 'mixtune-onestep-'));
  const cfg = validateTrainConfig({ model: 'stories260K', output_dir: out, data: { datasets: [gsm], max_len: 512 }, training: { max_steps: 1, micro_batch_size: 2 } }, 'train.yaml', '/');
  const lines: string[] = [];
  const s = await trainFromConfig(cfg, { progress: false, log: (l) => lines.push(l) });
  assert.equal(s.lr, 1e-3, 'full fine-tuning of a < 100M model defaults to 1e-3');
  assert.ok(lines.some((l) => /lr 0\.001 \(default for full fine-tuning of < 100M parameters\)/.test(l)), lines.join('\n'));
  const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step?: number; lr?: number });
  const last = metrics.filter((m) => m.lr !== undefined).at(-1)!;
  assert.ok(last.lr! > 0, `the last step ran at lr ${last.lr}`);
  const base = loadLlama2c(resolveModelRef('stories260K').model).weights.get('model.layers.0.self_attn.q_proj.weight')!;
  const tuned = readSafetensors(join(out, 'final', 'model.safetensors')).read('model.layers.0.self_attn.q_proj.weight');
  let moved = 0;
  for (let i = 0; i < base.length; i++) if (base[i] !== tuned[i]) moved++;
  assert.ok(moved > base.length / 2, `only ${moved} of ${base.length} weights moved`);
});

test('train: LoRA defaults to lr 2e-4', async () => {
  const out = mkdtempSync(join(tmpdir(), 'mixtune-lora-lr-'));
  const cfg = validateTrainConfig({ model: 'stories260K', output_dir: out, data: { datasets: [{ ...gsm, limit: 8 }], max_len: 512 }, training: { max_steps: 1 }, lora: { rank: 4 } }, 'train.yaml', '/');
  assert.equal((await trainFromConfig(cfg, quiet)).lr, 2e-4);
});

test('prepare: truncating most groups warns with the numbers and the fix; nothing left names max_len', () => {
  const cfg = validateTrainConfig({ model: 'stories260K', data: { datasets: [gsm], max_len: 300 } }, 'train.yaml', '/');
  const tok = checkModelAndTokenizer(cfg.model, cfg.tokenizer);
  const p = prepareRows(cfg, encoderFor(tok, cfg).encode);
  assert.equal(p.stats.warnings.length, 1, JSON.stringify(p.stats.warnings));
  assert.match(p.stats.warnings[0]!, /^train: \d+ truncated( and \d+ dropped)? of 40 groups at max_len 300 \(longest (\d+) tokens\), losing [\d.]+% of the loss tokens; raise data\.max_len \(\2 keeps every group\), or data\.overflow: drop/);
  const short = join(packageRoot(), 'examples', 'data', 'constraints-train-200.jsonl');
  const fits = validateTrainConfig({ model: 'stories260K', data: { datasets: [{ path: short, format: 'constraints' }], max_len: 512 } }, 'train.yaml', '/');
  assert.deepEqual(prepareRows(fits, encoderFor(tok, fits).encode).stats.warnings, []);
  const drop = validateTrainConfig({ model: 'stories260K', data: { datasets: [gsm], max_len: 32, overflow: 'drop' } }, 'train.yaml', '/');
  assert.throws(() => prepareRows(drop, encoderFor(tok, drop).encode), (e: unknown) => e instanceof MixtuneError && /no training data left: .*40 dropped.*raise data\.max_len \(\d+ keeps every group\)/.test(e.message));
});

test('train: max_len beyond the model context is refused before preparation (stories260K: 512)', async () => {
  const out = mkdtempSync(join(tmpdir(), 'mixtune-ctx-'));
  const cfg = validateTrainConfig({ model: 'stories260K', output_dir: out, data: { datasets: [gsm], max_len: 8192 } }, 'train.yaml', '/');
  await assert.rejects(trainFromConfig(cfg, quiet), (e: unknown) => e instanceof MixtuneError && /^data\.max_len: 8192 puts positions beyond the model's context of 512 tokens.*lower data\.max_len to 512.*rope_scaling/.test(e.message));
});

test('miso-para: max_inputs defaults to 6 (full + bare + 4 constraints) on Crab records with up to 16 constraints', () => {
  const crab = join(sharedDir(), 'data', 'crab', 'constraint_back_translation_sample.json');
  const cfg = validateTrainConfig({ model: 'stories260K', data: { datasets: [{ path: crab, format: 'crab' }], max_len: 100000, pack: false }, recipe: { name: 'miso-para' } }, 'train.yaml', '/');
  assert.ok(cfg.recipe.name === 'miso-para' && cfg.recipe.max_inputs === 6);
  const tok = checkModelAndTokenizer(cfg.model, cfg.tokenizer);
  const p = prepareRows(cfg, encoderFor(tok, cfg).encode);
  const n = p.train.flatMap((r) => r.groups.map((g) => g.nInputs));
  assert.ok(n.length > 0 && Math.max(...n) === 6, `inputs per group: ${n.join(',')}`);
});
