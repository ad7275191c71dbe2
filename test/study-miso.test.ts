import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { aggregateMiso, misoCostTable, misoTable, perK, runMisoStudy, type MisoRunResult, type MisoStudyResults } from '../src/study/miso.js';
import type { IfevalResult } from '../src/eval/ifeval/score.js';
import { main } from '../src/cli/main.js';
import { sharedDir } from '../src/util/paths.js';
import { assertWellFormedSvg } from './util.js';

function fakeRun(seed: number, inst: number, extra: Partial<MisoRunResult> = {}): MisoRunResult {
  return {
    prompt_strict: inst / 2, inst_strict: inst, prompt_loose: inst / 2, inst_loose: inst, flatten_inst_strict: inst,
    seed, data_seed: seed, per_k: { '2': { prompt_strict: 0, inst_strict: inst, prompts: 1 } }, per_instruction_strict: { a: inst },
    losses: [2, 1], run: {
      recipe: 'x', steps: 2, examples_per_step: 1, trained_tokens: 100, processed_tokens: 300, first_loss: 2, final_loss: 1, test_loss: 1.5,
      train_seconds: 1, eval_seconds: 1, rows: 1, dropped: 0, truncated: 0,
    },
    ...extra,
  };
}

test('study miso: aggregate gives mean ± sample std and the per-seed paired difference to sft', () => {
  const sft = [fakeRun(0, 0.3), fakeRun(1, 0.5), fakeRun(2, 0.4)];
  // every seed +0.1 over sft: the paired difference has no spread although the seeds differ a lot
  const miso = [fakeRun(0, 0.4), fakeRun(1, 0.6), fakeRun(2, 0.5)];
  const a = aggregateMiso('m', { name: 'miso-para' }, miso, sft);
  assert.equal(a.metrics.inst_strict.mean, 0.5);
  assert.equal(a.metrics.inst_strict.std, 0.1);
  assert.equal(a.paired_vs_sft!.inst_strict.mean, 0.1);
  assert.equal(a.paired_vs_sft!.inst_strict.std, 0);
  assert.equal(a.per_k_inst_strict['2']!.mean, 0.5);
  assert.deepEqual(a.losses, [2, 1]);
  assert.equal(aggregateMiso('s', { name: 'sft' }, sft).paired_vs_sft, undefined);
  const table = misoTable({ configs: { sft: aggregateMiso('s', {}, sft), miso: a }, settings: {} });
  assert.match(table, /\| miso \| 25\.0 ± 5\.0 \| 50\.0 ± 10\.0 \|.*\| \+10\.0 ± 0\.0 \| 1\.500 ± 0\.000 \|/);
});

test('study miso: per-k splits prompt and instruction accuracy by the number of constraints', () => {
  const r = (ids: string[], follow: boolean[]): IfevalResult => ({
    instruction_id_list: ids, prompt: '', response: '', follow_all_instructions: follow.every((x) => x), follow_instruction_list: follow,
  });
  const k = perK([r(['a', 'b'], [true, true]), r(['a', 'b'], [true, false]), r(['a', 'b', 'c'], [false, false, true])]);
  assert.deepEqual(k, {
    '2': { prompt_strict: 0.5, inst_strict: 0.75, prompts: 2 },
    '3': { prompt_strict: 0, inst_strict: 0.3333, prompts: 1 },
  });
});

test('study miso: a tiny run trains every config on the same examples and writes results, table and a well-formed SVG', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-study-miso-'));
  try {
    const lines: string[] = [];
    const configs = ['sft', 'miso-para', 'miso-para-wo-full', 'miso-succ'];
    await runMisoStudy({ out: dir, steps: 2, seeds: 2, nTrain: 24, nTest: 3, batch: 4, maxNewTokens: 8, configs, progress: false, log: (s) => lines.push(s) });
    const res = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as MisoStudyResults;
    assert.deepEqual(Object.keys(res.configs), ['base', ...configs]);
    for (const [name, c] of Object.entries(res.configs)) {
      assert.equal(c.runs.length, 2, name);
      for (const m of Object.values(c.metrics)) assert.ok(m.mean >= 0 && m.mean <= 1 && m.std >= 0, name);
      assert.equal(c.losses.length, name === 'base' ? 0 : 2);
      assert.equal(c.paired_vs_sft === undefined, name === 'base' || name === 'sft', name);
      assert.ok(c.test_loss && c.test_loss.mean > 0 && Number.isFinite(c.test_loss.mean), name);
    }
    // Same rows per step in the same seeded order: the recipes differ only in the inputs, so every
    // one trains exactly the same response tokens.
    for (const seed of [0, 1]) {
      const tokens = configs.map((n) => res.configs[n]!.runs[seed]!.run.trained_tokens);
      assert.ok(tokens[0]! > 0);
      assert.deepEqual(tokens, configs.map(() => tokens[0]), `seed ${seed}: ${tokens}`);
      // MISO processes more tokens (several inputs) for the same trained tokens
      assert.ok(res.configs['miso-para']!.runs[seed]!.run.processed_tokens > res.configs.sft!.runs[seed]!.run.processed_tokens);
    }
    assert.notDeepEqual(res.configs.sft!.runs[0]!.losses, res.configs.sft!.runs[1]!.losses);
    const svg = readFileSync(join(dir, 'miso.svg'), 'utf8');
    assertWellFormedSvg(svg);
    assert.equal(svg.match(/<polyline/g)?.length, configs.length);
    const table = readFileSync(join(dir, 'table.md'), 'utf8');
    assert.match(table, /\| miso-para \|/);
    assert.match(table, /constraints/);
    assert.equal(readFileSync(join(dir, 'runs', 'miso-para-s1', 'responses.jsonl'), 'utf8').trim().split('\n').length, 3);

    // the same command again reuses every finished run and gives the same results; a changed
    // setting (here the learning rate) retrains
    const again: string[] = [];
    const res2 = await runMisoStudy({ out: dir, steps: 2, seeds: 2, nTrain: 24, nTest: 3, batch: 4, maxNewTokens: 8, configs: ['sft', 'miso-para'], progress: false, log: (s) => again.push(s) });
    assert.equal(again.filter((l) => /reusing/.test(l)).length, 4);
    assert.ok(again.some((l) => /reused 6 run/.test(l)), again.join('\n'));
    assert.deepEqual(res2.configs['miso-para']!.metrics, res.configs['miso-para']!.metrics);
    const changed: string[] = [];
    await runMisoStudy({ out: dir, steps: 2, seeds: 1, nTrain: 24, nTest: 3, batch: 4, maxNewTokens: 8, lr: 1e-3, configs: ['sft'], progress: false, log: (s) => changed.push(s) });
    assert.ok(!changed.some((l) => /reusing/.test(l)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('study miso: a user model as an HF folder brings its own tokenizer', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-study-miso-hf-'));
  try {
    const fx = join(sharedDir(), 'fixtures', 'stories260K');
    const err = process.stderr.write;
    process.stderr.write = (() => true) as typeof process.stderr.write;
    try {
      assert.equal(await main(['convert', '--from', join(fx, 'stories260K.bin'), '--tokenizer', join(fx, 'tok512.bin'), '--to', join(dir, 'hf')]), 0);
    } finally {
      process.stderr.write = err;
    }
    const res = await runMisoStudy({ out: join(dir, 'out'), model: join(dir, 'hf'), steps: 1, seeds: 1, nTrain: 8, nTest: 2, batch: 2, maxNewTokens: 4, configs: ['sft'], progress: false, log: () => {} });
    assert.equal(res.configs.sft!.runs.length, 1);
    assert.ok(res.configs.sft!.test_loss!.mean > 0);
    await assert.rejects(runMisoStudy({ out: join(dir, 'out2'), model: join(dir, 'nope'), configs: ['sft'], log: () => {} }), /nope: model not found/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('study miso CLI: unknown or repeated configuration is a usage error', async () => {
  const write = process.stderr.write;
  let err = '';
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  try {
    assert.equal(await main(['study', 'miso', '--configs', 'sft,nope']), 2);
    assert.equal(await main(['study', 'miso', '--configs', 'sft,sft']), 2);
  } finally {
    process.stderr.write = write;
  }
  assert.match(err, /unknown configuration 'nope'/);
  assert.match(err, /listed twice/);
});

test('study miso: cost per point and --budget-seconds (steps from the measured rate of the step-budget run; reused on rerun)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-study-miso-cost-'));
  try {
    const o = { out: dir, steps: 2, seeds: 1, nTrain: 16, nTest: 2, batch: 2, maxNewTokens: 4, configs: ['sft'], budgetSeconds: 0.2, budgetConfigs: ['sft'], progress: false as const };
    const res = await runMisoStudy({ ...o, log: () => {} });
    const c = res.configs.sft!;
    const base = res.configs.base!;
    assert.equal(base.cost, undefined);
    const run = c.runs[0]!;
    assert.equal(c.cost!.steps, 2);
    assert.equal(c.cost!.train_seconds, Math.round(run.run.train_seconds * 10) / 10);
    assert.ok(Math.abs(c.cost!.gain_inst_strict.mean - (run.inst_strict - base.runs[0]!.inst_strict) * 100) < 0.01);
    if (c.cost!.gain_inst_strict.mean > 0) assert.ok(Math.abs(c.cost!.seconds_per_point! - run.run.train_seconds / c.cost!.gain_inst_strict.mean) < 0.05);
    else assert.equal(c.cost!.seconds_per_point, null);
    const tb = c.time_budget!;
    assert.equal(tb.seconds, 0.2);
    const want = Math.max(1, Math.round(0.2 / (Math.max(0.05, run.run.train_seconds) / run.run.steps)));
    assert.equal(tb.runs[0]!.run.steps, want);
    assert.equal(tb.cost.steps, want);
    const onDisk = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as MisoStudyResults;
    assert.deepEqual(onDisk.configs.sft!.time_budget!.cost, tb.cost);
    assert.match(misoCostTable(res), /\| sft \| 0\.2 s \|/);
    assert.match(readFileSync(join(dir, 'table.md'), 'utf8'), /Cost per point/);
    const again: string[] = [];
    await runMisoStudy({ ...o, log: (s) => again.push(s) });
    assert.ok(again.some((l) => /sft 0\.2s s0: reusing/.test(l)), again.join('\n'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
