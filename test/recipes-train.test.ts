import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot, sharedDir } from '../src/util/paths.js';

// End to end (issue 4, item 5): `mixtune train` runs every recipe on stories260K with one small
// multi-constraint, multi-domain dataset, and the training loss goes down for each.
const bin = join(packageRoot(), 'bin', 'mixtune.js');
const fix = join(sharedDir(), 'fixtures', 'stories260K');
const tmp = mkdtempSync(join(tmpdir(), 'mixtune-recipes-train-'));

function writeMultiDataset(path: string, n = 32): void {
  const names = ['Lily', 'Tom', 'Ben', 'Sue', 'Max', 'Mia', 'Sam', 'Ann'];
  const things = ['a red ball', 'a big dog', 'a small cat', 'a blue car', 'a tall tree'];
  const cons = ['Use short words.', 'End with a happy line.', 'Say the name twice.', 'Keep it to two sentences.'];
  const domains = ['chat', 'code', 'math', 'tool'];
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const who = names[i % names.length]!;
    const what = things[i % things.length]!;
    lines.push(JSON.stringify({
      instruction: `Write about ${who} and ${what}.`,
      constraints: cons.slice(i % 2, (i % 2) + 1 + (i % 3)),
      output: `${who} saw ${what}. ${who} was happy.`,
      domain: domains[i % (i < n / 2 ? 4 : 2)], // uneven domain sizes
    }));
  }
  writeFileSync(path, lines.join('\n') + '\n');
}

const data = join(tmp, 'multi.jsonl');
writeMultiDataset(data);

const RECIPES: Record<string, string> = {
  sft: '{name: sft}',
  moi: '{name: moi, n_mix: 2, system_prompts: {chat: [Be kind., Be brief.], code: [Write code.], math: [Do math.], tool: [Use tools.]}}',
  'miso-para': '{name: miso-para}',
  'miso-augment-only': '{name: miso-augment-only, max_inputs: 3}',
  'miso-succ': '{name: miso-succ, k_probs: [0.25, 0.25, 0.25, 0.25]}',
};

function config(name: string): string {
  const p = join(tmp, `${name}.yaml`);
  writeFileSync(p, `model: ${join(fix, 'stories260K.bin')}
tokenizer: ${join(fix, 'tok512.bin')}
output_dir: ${join(tmp, name)}
seed: 3
data:
  datasets:
    - path: ${data}
  max_len: 512
  eval_split: 0.1
recipe: ${RECIPES[name]}
training:
  max_steps: 8
  micro_batch_size: 2
  lr: 0.003
  warmup_steps: 1
  eval_every: 8
`);
  return p;
}

function run(args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [bin, ...args]);
    let stderr = '';
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    c.on('exit', (code) => resolve({ code: code ?? -1, stderr }));
  });
}

test('mixtune train: every recipe trains on stories260K and lowers the loss', async () => {
  const names = Object.keys(RECIPES);
  // Two at a time (2 cores).
  const results: Record<string, { code: number; stderr: string }> = {};
  for (let i = 0; i < names.length; i += 2) {
    const batch = names.slice(i, i + 2);
    const rs = await Promise.all(batch.map((n) => run(['train', '--config', config(n), '--no-progress'])));
    batch.forEach((n, j) => (results[n] = rs[j]!));
  }
  for (const name of names) {
    const r = results[name]!;
    assert.equal(r.code, 0, `${name}: ${r.stderr}`);
    const metrics = readFileSync(join(tmp, name, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { loss?: number; eval_loss?: number });
    const losses = metrics.filter((m) => m.loss !== undefined).map((m) => m.loss!);
    assert.equal(losses.length, 8, name);
    assert.ok(losses[7]! < losses[0]! * 0.6, `${name}: loss ${losses[0]} -> ${losses[7]}`);
    const summary = JSON.parse(readFileSync(join(tmp, name, 'summary.json'), 'utf8'));
    assert.equal(summary.data.recipe, name);
    assert.equal(summary.data.truncated + summary.data.dropped, 0, `${name}: ${JSON.stringify(summary.data)}`);
    assert.ok(Number.isFinite(summary.eval_loss), name);
    assert.match(r.stderr, new RegExp(`recipe ${name};`));
  }
  const info = (n: string): Record<string, unknown> => JSON.parse(readFileSync(join(tmp, n, 'summary.json'), 'utf8')).data.recipe_info;
  assert.ok(Number(info('miso-para').augmented_examples) > 20);
  assert.equal(info('moi').n_mix, 2);
});
