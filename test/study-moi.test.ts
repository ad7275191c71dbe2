import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  MOI_DOMAINS, STUDY_HELDOUT_SYSTEM_PROMPTS, STUDY_SYSTEM_PROMPTS, checkChat, checkCodeStatic, checkMath, checkTool, codeTestProgram, domainCapacity, makeMoiData,
  type CodeCheck, type MoiItem,
} from '../src/study/moi-data.js';
import { existsSync, statSync } from 'node:fs';
import { MAX_EVAL_PROMPTS, moiTrainConfig, nMixConfigs, runMoiStudy, sequentialRows, MOI_STUDY_DEFAULTS, type MoiStudyResults } from '../src/study/moi.js';
import { BUILTIN_SYSTEM_PROMPTS, DEFAULT_SYSTEM_PROMPT } from '../src/data/recipes/prompts.js';
import { lossAccuracySvg, movingAverage } from '../src/util/plot-svg.js';
import { runPython } from '../src/eval/code.js';
import { buildRow, causalGroup, type Row } from '../src/data/pack.js';
import { main } from '../src/cli/main.js';
import { assertWellFormedSvg } from './util.js';

const data = makeMoiData({ seed: 7, nTrain: 200, nTest: 40 });
const all = (): MoiItem[] => MOI_DOMAINS.flatMap((d) => [...data[d].train, ...data[d].test]);

function corrupt(it: MoiItem): string {
  switch (it.check.kind) {
    case 'chat': {
      const w = it.answer.replace(/\.$/, '').split(' ');
      w[w.length - 1] = w[w.length - 1] === 'zebra' ? 'lion' : 'zebra';
      return w.join(' ') + '.';
    }
    case 'math':
      return it.answer.replace(/(\d+)\.$/, (_, n: string) => `${Number(n) + 1}.`);
    case 'tool':
      return it.answer.replace(/: ("?)([^"}]+)("?)\}\}$/, (_, q1: string, v: string, q2: string) => `: ${q1}${q1 ? v + 'x' : String(Number(v) + 1)}${q2}}}`);
    case 'code':
      return it.answer.replace(/[+\-*]/, (op) => (op === '+' ? '-' : '+'));
  }
}

test('moi data: every checker accepts the reference answer and rejects a corrupted one', () => {
  for (const it of all()) {
    const bad = corrupt(it);
    assert.notEqual(bad, it.answer, it.key);
    switch (it.check.kind) {
      case 'chat':
        assert.ok(checkChat(it.answer, it.check), it.key);
        assert.ok(checkChat(` ${it.answer.toUpperCase()} `, it.check), 'case and spaces do not matter');
        assert.ok(!checkChat(bad, it.check), `${it.key}: ${bad}`);
        break;
      case 'math':
        assert.ok(checkMath(it.answer, it.check), it.key);
        assert.ok(!checkMath(bad, it.check), `${it.key}: ${bad}`);
        break;
      case 'tool': {
        assert.deepEqual(checkTool(it.answer, it.check), { valid: true, correct: true, reason: '' }, it.key);
        const v = checkTool(bad, it.check);
        assert.ok(v.valid && !v.correct, `${it.key}: ${bad}`);
        assert.equal(checkTool(it.answer.slice(0, -1), it.check).valid, false, 'truncated JSON');
        break;
      }
      case 'code':
        assert.ok(checkCodeStatic(it.answer, it.check), it.key);
        assert.ok(!checkCodeStatic(bad, it.check), `${it.key}: ${bad}`);
        break;
    }
  }
  // Schema: unknown tool, wrong argument type, missing / extra arguments.
  const c = { kind: 'tool' as const, name: 'set_timer', arguments: { minutes: 5 } };
  assert.equal(checkTool('{"name": "set_timer", "arguments": {"minutes": 5}}', c).correct, true);
  assert.equal(checkTool('{"name": "set_timer", "arguments": {"minutes": "5"}}', c).valid, false);
  assert.equal(checkTool('{"name": "set_alarm", "arguments": {"minutes": 5}}', c).valid, false);
  assert.equal(checkTool('{"name": "set_timer", "arguments": {}}', c).valid, false);
  assert.equal(checkTool('{"name": "set_timer", "arguments": {"minutes": 5, "x": 1}}', c).valid, false);
  assert.equal(checkTool('{"name": "get_time", "arguments": {"city": "Rome"}}', c).valid, true);
  assert.equal(checkTool('{"name": "get_time", "arguments": {"city": "Rome"}}', c).correct, false);
  assert.equal(checkMath('12 plus 9 is 21.', { kind: 'math', value: 21 }), true);
  assert.equal(checkMath('no number', { kind: 'math', value: 21 }), false);
});

test('moi data: the python sandbox agrees with the static check on reference and corrupted code', async () => {
  const items = data.code.test.slice(0, 3);
  for (const it of items) {
    const c = it.check as CodeCheck;
    const ok = await runPython(codeTestProgram(it.answer, c), { timeoutS: 10 });
    assert.ok(ok.passed, `${it.key}: ${ok.reason}`);
    const bad = await runPython(codeTestProgram(corrupt(it), c), { timeoutS: 10 });
    assert.ok(!bad.passed, it.key);
  }
});

test('moi data: seeded, splits disjoint, sizes as asked (capped by the item space)', () => {
  for (const d of MOI_DOMAINS) {
    const { train, test: tst } = data[d];
    assert.equal(tst.length, 40);
    assert.equal(train.length, Math.min(200, domainCapacity(d) - 40), d);
    const trainKeys = new Set(train.map((i) => i.key));
    const trainPrompts = new Set(train.map((i) => i.prompt));
    assert.equal(trainKeys.size, train.length, `${d}: duplicate train keys`);
    for (const it of tst) {
      assert.ok(!trainKeys.has(it.key), `${d}: ${it.key} in both splits`);
      assert.ok(!trainPrompts.has(it.prompt), `${d}: prompt ${it.prompt} in both splits`);
    }
  }
  assert.deepEqual(makeMoiData({ seed: 7, nTrain: 200, nTest: 40 }), data);
  assert.notDeepEqual(makeMoiData({ seed: 8, nTrain: 200, nTest: 40 }).chat.test, data.chat.test);
  assert.throws(() => makeMoiData({ seed: 1, nTrain: 1, nTest: 10_000 }), /only/);
});

function fakeRow(id: number): Row {
  return buildRow([causalGroup([id, id], [id, id], `r${id}`)]);
}

test('sequentialRows: domain blocks in order, equal shares, cycling small domains', () => {
  const per = [[fakeRow(1), fakeRow(2)], [fakeRow(10)], [fakeRow(20), fakeRow(21), fakeRow(22)], [fakeRow(30)]];
  const rows = sequentialRows(per, 10, 0);
  assert.equal(rows.length, 10);
  const dom = rows.map((r) => Math.floor(r.tokens[0]! / 10));
  assert.deepEqual(dom, [0, 0, 1, 1, 1, 2, 2, 3, 3, 3]);
  assert.deepEqual(new Set(rows.slice(0, 2).map((r) => r.tokens[0])), new Set([1, 2]), 'a pass uses every row once');
});

test('plot: a well-formed SVG with one line per curve and one bar per config and group', () => {
  const svg = lossAccuracySvg({
    title: 'a <b> & c', losses: [{ name: 'x', values: [3, 2, 1] }, { name: 'y', values: [2, 2, Number.NaN] }], smooth: 2,
    groups: ['g1', 'g2'], bars: [{ name: 'x', values: [0.5, 1], err: [0.1, 0] }, { name: 'y', values: [0, 0.25] }],
  });
  assertWellFormedSvg(svg);
  assert.equal(svg.match(/<polyline/g)?.length, 2);
  assert.ok(svg.includes('a &lt;b&gt; &amp; c'));
  assert.deepEqual(movingAverage([1, 3, 5], 2), [1, 2, 4]);
  // nothing to draw is still a valid figure; an empty curve (the base model) draws no line
  assertWellFormedSvg(lossAccuracySvg({ title: '"q"', losses: [], groups: [], bars: [] }));
  const withBase = lossAccuracySvg({ title: 't', losses: [{ name: 'base', values: [] }, { name: 'sft', values: [2, 1] }], groups: ['g'], bars: [{ name: 'base', values: [0.1] }, { name: 'sft', values: [0.2] }], logY: true });
  assertWellFormedSvg(withBase);
  assert.equal(withBase.match(/<polyline/g)?.length, 1);
  // long legend names flow onto more rows instead of overlapping, and the figure grows to fit
  const names = Array.from({ length: 9 }, (_, i) => `configuration-with-a-long-name-${i}`);
  const wide = lossAccuracySvg({ title: 't', losses: [], groups: ['g'], bars: names.map((n) => ({ name: n, values: [0.5] })) });
  assertWellFormedSvg(wide);
  const items = [...wide.matchAll(/<rect x="([\d.]+)" y="([\d.]+)" width="12" height="12"[^>]*\/>\s*<text x="[\d.]+" y="[\d.]+">([^<]+)</g)]
    .map((m) => ({ x: Number(m[1]), y: Number(m[2]), name: m[3]! }));
  assert.deepEqual(items.map((i) => i.name), names);
  assert.ok(new Set(items.map((i) => i.y)).size > 1, 'more than one legend row');
  for (let i = 1; i < items.length; i++) {
    if (items[i]!.y === items[i - 1]!.y) assert.ok(items[i]!.x - items[i - 1]!.x >= 7 * items[i - 1]!.name.length, `legend item ${i} overlaps the one before`);
  }
  const height = (svg: string): number => Number(/height="(\d+)"/.exec(svg)![1]);
  assert.ok(height(wide) > height(withBase));
});

test('study moi: a tiny run writes results.json of the right shape and a well-formed SVG', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-study-moi-'));
  try {
    const lines: string[] = [];
    await runMoiStudy({ out: dir, steps: 2, nTrain: 16, nTest: 4, configs: ['moi', 'packed'], progress: false, log: (s) => lines.push(s) });
    const res = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as MoiStudyResults;
    assert.deepEqual(Object.keys(res.configs), ['moi', 'packed']);
    for (const c of Object.values(res.configs)) {
      assert.deepEqual(Object.keys(c.domains).sort(), [...MOI_DOMAINS].sort());
      for (const v of [...Object.values(c.domains), c.avg]) assert.ok(v >= 0 && v <= 1);
      assert.equal(c.losses.length, 2);
      assert.ok(c.losses.every((l) => Number.isFinite(l) && l > 0));
      assert.equal(c.runs.length, 1);
      assert.equal(c.std, undefined);
    }
    assert.equal(res.settings.steps, 2);
    assert.equal(res.settings.eval_system, 'You are a helpful assistant.');
    const svg = readFileSync(join(dir, 'moi.svg'), 'utf8');
    assertWellFormedSvg(svg);
    assert.equal(svg.match(/<polyline/g)?.length, 2);
    assert.match(readFileSync(join(dir, 'table.md'), 'utf8'), /\| moi \|/);
    const responses = readFileSync(join(dir, 'runs', 'moi-s0', 'responses.jsonl'), 'utf8').trim().split('\n');
    assert.equal(responses.length, 16);
    // the same command again reuses the finished runs
    const again: string[] = [];
    const res2 = await runMoiStudy({ out: dir, steps: 2, nTrain: 16, nTest: 4, configs: ['moi'], progress: false, log: (s) => again.push(s) });
    assert.ok(again.some((l) => /moi seed 0: reusing/.test(l)), again.join('\n'));
    assert.deepEqual(res2.configs.moi!.domains, res.configs.moi!.domains);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('study moi CLI: unknown configuration is a usage error', async () => {
  const write = process.stderr.write;
  let err = '';
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  try {
    assert.equal(await main(['study', 'moi', '--configs', 'moi,nope']), 2);
  } finally {
    process.stderr.write = write;
  }
  assert.match(err, /unknown configuration 'nope'/);
});

test('study moi: held-out system prompts are disjoint from every training prompt, per domain', () => {
  const training = new Set<string>([DEFAULT_SYSTEM_PROMPT, ...Object.values(STUDY_SYSTEM_PROMPTS).flat(), ...Object.values(BUILTIN_SYSTEM_PROMPTS).flat()]);
  for (const d of MOI_DOMAINS) {
    const held = STUDY_HELDOUT_SYSTEM_PROMPTS[d];
    assert.ok(held.length >= 5, `${d}: at least 5 held-out prompts (the --eval-prompts default)`);
    assert.equal(new Set(held).size, held.length, `${d}: held-out prompts are distinct`);
    for (const p of held) assert.ok(!training.has(p), `${d}: "${p}" is a training prompt`);
  }
  assert.ok(MAX_EVAL_PROMPTS >= MOI_STUDY_DEFAULTS.evalPrompts);
});

test('study moi: --n-mix configurations chunk 2 / 8 instructions (rows twice as long for 8, same tokens per step)', () => {
  assert.deepEqual(nMixConfigs([2, 4, 8]), ['moi-nmix2', 'moi', 'moi-nmix8']);
  assert.throws(() => nMixConfigs([3]), /n_mix 3/);
  const o = { ...MOI_STUDY_DEFAULTS, out: '/tmp/x' };
  const files = Object.fromEntries(MOI_DOMAINS.map((d) => [d, { train: `/tmp/${d}-train.jsonl`, test: `/tmp/${d}-test.jsonl` }])) as Parameters<typeof moiTrainConfig>[2];
  const n2 = moiTrainConfig('moi-nmix2', o, files, 0, '/tmp/x/r');
  const n8 = moiTrainConfig('moi-nmix8', o, files, 0, '/tmp/x/r');
  const n4 = moiTrainConfig('moi', o, files, 0, '/tmp/x/r');
  assert.equal((n2.recipe as { n_mix?: number }).n_mix, 2);
  assert.equal((n8.recipe as { n_mix?: number }).n_mix, 8);
  assert.equal((n4.recipe as { n_mix?: number }).n_mix, undefined, 'moi keeps one instruction per domain (4)');
  assert.equal(n8.data.max_len, 2 * o.maxLen);
  assert.equal(n8.training.micro_batch_size * n8.data.max_len, n4.training.micro_batch_size * n4.data.max_len);
  assert.equal(n2.data.max_len, o.maxLen);
});

test('study moi: --eval-prompts and --curve-every fill prompt_sensitivity and curve; a rerun with more prompts evaluates the saved weights', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-study-moi-ext-'));
  try {
    const base = { out: dir, steps: 4, nTrain: 8, nTest: 3, configs: ['moi-nmix2'], progress: false as const, maxNewTokens: 16 };
    const lines: string[] = [];
    const res = await runMoiStudy({ ...base, evalPrompts: 2, curveEvery: 2, curveConfigs: ['moi-nmix2'], log: (s) => lines.push(s) });
    const onDisk = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as MoiStudyResults;
    const c = onDisk.configs['moi-nmix2']!;
    const ps = c.prompt_sensitivity!;
    assert.ok(ps, 'prompt_sensitivity in results.json');
    assert.deepEqual(Object.keys(ps).slice(0, 4), ['prompts', 'avg_per_prompt', 'mean', 'std']);
    assert.equal(ps.prompts.length, 2);
    assert.equal(ps.prompts[1]!.math, STUDY_HELDOUT_SYSTEM_PROMPTS.math[1]);
    assert.equal(ps.avg_per_prompt.length, 2);
    // the numbers are the verdicts of the held-out answers on disk
    for (let k = 0; k < 2; k++) {
      const resp = readFileSync(join(dir, 'runs', 'moi-nmix2-s0', `responses-prompt-${k}.jsonl`), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { domain: string; correct: boolean });
      assert.equal(resp.length, 12);
      const perDomain = MOI_DOMAINS.map((d) => resp.filter((r) => r.domain === d && r.correct).length / 3);
      assert.ok(Math.abs(ps.avg_per_prompt[k]! - perDomain.reduce((a, b) => a + b, 0) / 4) < 1e-3);
    }
    assert.ok(Math.abs(ps.mean - (ps.avg_per_prompt[0]! + ps.avg_per_prompt[1]!) / 2) < 1e-3);
    assert.ok(Math.abs(ps.std - Math.abs(ps.avg_per_prompt[0]! - ps.avg_per_prompt[1]!) / Math.SQRT2) < 1e-3);
    // learning curve: checkpoint 2 and the final weights (step 4 = the default-prompt result)
    assert.deepEqual(c.curve!.steps, [2, 4]);
    assert.deepEqual(MOI_DOMAINS.map((d) => c.curve!.domains[d][1]), MOI_DOMAINS.map((d) => c.domains[d]));
    assert.ok(existsSync(join(dir, 'runs', 'moi-nmix2-s0', 'checkpoint-2')));
    assert.ok(existsSync(join(dir, 'moi-curves.svg')));
    assertWellFormedSvg(readFileSync(join(dir, 'moi-curves.svg'), 'utf8'));
    assert.match(readFileSync(join(dir, 'table.md'), 'utf8'), /held-out prompts/);
    assert.deepEqual(res.configs['moi-nmix2']!.prompt_sensitivity, ps);
    // one more prompt: the run is not trained again, only the new prompt is evaluated
    const resultMtime = statSync(join(dir, 'runs', 'moi-nmix2-s0', 'result.json')).mtimeMs;
    const again: string[] = [];
    const res2 = await runMoiStudy({ ...base, evalPrompts: 3, curveEvery: 2, curveConfigs: ['moi-nmix2'], log: (s) => again.push(s) });
    assert.ok(again.some((l) => /evaluating its saved weights \(1 held-out prompt/.test(l)), again.join('\n'));
    assert.ok(!again.some((l) => /final loss/.test(l)), 'not retrained');
    assert.equal(statSync(join(dir, 'runs', 'moi-nmix2-s0', 'result.json')).mtimeMs, resultMtime);
    const ps2 = res2.configs['moi-nmix2']!.prompt_sensitivity!;
    assert.deepEqual(ps2.avg_per_prompt.slice(0, 2), ps.avg_per_prompt);
    assert.equal(ps2.prompts.length, 3);
    // without the option: no prompt_sensitivity / curve fields
    const res3 = await runMoiStudy({ ...base, evalPrompts: 0, log: () => {} });
    assert.equal(res3.configs['moi-nmix2']!.prompt_sensitivity, undefined);
    assert.equal(res3.configs['moi-nmix2']!.curve, undefined);
    await assert.rejects(runMoiStudy({ ...base, evalPrompts: MAX_EVAL_PROMPTS + 1, log: () => {} }), /--eval-prompts/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('study moi CLI: --n-mix accepts 2, 4, 8 only', async () => {
  const write = process.stderr.write;
  let err = '';
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  try {
    assert.equal(await main(['study', 'moi', '--n-mix', '2,3']), 2);
  } finally {
    process.stderr.write = write;
  }
  assert.match(err, /--n-mix.*2, 4, 8/);
});
