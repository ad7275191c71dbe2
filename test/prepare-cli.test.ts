import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot, sharedDir } from '../src/util/paths.js';
import { loadPrepared } from '../src/train/prepare.js';

const bin = join(packageRoot(), 'bin', 'mixtune.js');
const fix = join(sharedDir(), 'fixtures', 'stories260K');
const tmp = mkdtempSync(join(tmpdir(), 'mixtune-prepare-cli-'));

const data = join(tmp, 'multi.jsonl');
{
  const names = ['Lily', 'Tom', 'Ben', 'Sue', 'Max', 'Mia'];
  const cons = ['Use short words.', 'End with a happy line.', 'Say the name twice.'];
  const lines: string[] = [];
  for (let i = 0; i < 20; i++) {
    const who = names[i % names.length]!;
    // 12 examples with 2 constraints, 8 with none (plain SFT groups under miso-para).
    const rec = i < 12
      ? { instruction: `Write about ${who}.`, constraints: cons.slice(i % 2, (i % 2) + 2), output: `${who} was happy.`, domain: i % 2 ? 'chat' : 'math' }
      : { instruction: `Say hi to ${who}.`, output: `Hi ${who}!`, domain: 'chat' };
    lines.push(JSON.stringify(rec));
  }
  writeFileSync(data, lines.join('\n') + '\n');
}

/** stories260K as an HF folder with a longer context, set deliberately (tests with long records). */
function longContextModel(name: string): string {
  const dir = join(tmp, name);
  assert.equal(run('convert', '--from', 'stories260K', '--to', dir).code, 0);
  const hf = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...hf, max_position_embeddings: 16384 }));
  return dir;
}

function config(name: string, recipe = '{name: miso-para}', extra = ''): string {
  const p = join(tmp, `${name}.yaml`);
  writeFileSync(p, `model: ${join(fix, 'stories260K.bin')}
tokenizer: ${join(fix, 'tok512.bin')}
output_dir: ${join(tmp, name)}
seed: 2
data:
  datasets:
    - path: ${data}
  max_len: 256
  eval_split: 0.1
${extra}recipe: ${recipe}
training:
  max_steps: 4
  micro_batch_size: 2
  lr: 0.002
  eval_every: 2
`);
  return p;
}

function run(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

test('prepare: statistics, a rendered row, and --out rows that train exactly like inline preparation', () => {
  const cfg = config('inline');
  const out = join(tmp, 'rows.jsonl');
  const r = run('prepare', '--config', cfg, '--show', '1', '--out', out);
  assert.equal(r.code, 0, r.stderr);
  const s = r.stdout;
  assert.match(s, /^recipe: miso-para \(augmented_examples=\d+ sft_examples=\d+ inputs_per_example=\{4=\d+\}\)/);
  assert.match(s, /examples per domain: (math|chat)=\d+ (math|chat)=\d+ \(total 18\); eval examples: 2/);
  assert.match(s, /skipped bad records: 0; without trained tokens: 0/);
  assert.match(s, /train: 18 groups -> \d+ rows of <= 256 tokens; packing efficiency \d+\.\d%; tokens \d+ \(\d+ with loss\); truncated 0, dropped 0/);
  assert.match(s, /eval: 2 groups -> 1 rows/);
  // The rendered row: groups, parts with position ranges, loss tokens in ⟦ ⟧.
  assert.match(s, /row 0: \d+ tokens, \d+ groups?, \d+ loss tokens/);
  assert.match(s, /group 0: MISO, 4 inputs, uniform weighting, \d+ tokens\n    input 0  pos 0\.\.\d+ +<s>.*### User:\\nWrite about \w+\. \w+ \w+ \w+\. .*\n    input 1  pos 0\.\./);
  assert.match(s, /    input 3  pos 0\.\.\d+ +<s>.*### User:\\nWrite about \w+\.\n    output   pos (\d+)\.\.\d+ +\\n\\n### Assistant:\\n⟦\w+ was happy\.<\/s>⟧/);
  assert.match(s, new RegExp(`saved \\d+ train and 1 eval rows to ${out.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
  assert.ok(!readdirSync(tmp).some((f) => f.includes('.tmp-')), 'no temporary file left');

  // --json gives the same counts; --tokens renders one token per line with the loss marker.
  const j = run('prepare', '--config', cfg, '--json', '--show', '1', '--tokens');
  assert.equal(j.code, 0, j.stderr);
  const stats = JSON.parse(j.stdout.split('\n')[0]!);
  assert.equal(stats.recipe, 'miso-para');
  assert.equal(stats.train.groups, 18);
  assert.equal(stats.evalExamples, 2);
  assert.match(j.stdout, /\n +t group +part +pos +id +loss +token\n +0 +0 +in0 +0 +1 +'<s>'/);
  assert.match(j.stdout, /\n +\d+ +0 +out +\d+ +\d+ +\* +' was'/);

  const prep = loadPrepared(out);
  assert.equal(prep.stats.train.groups, 18);
  assert.equal(prep.eval.length, 1);
  assert.ok(prep.train.some((row) => row.groups.some((g) => g.nInputs === 4)));

  // Train inline and from the file: the same losses.
  const a = run('train', '--config', cfg, '--no-progress');
  assert.equal(a.code, 0, a.stderr);
  const b = run('train', '--config', config('fromfile', '{name: miso-para}', `  prepared: ${out}\n`), '--no-progress');
  assert.equal(b.code, 0, b.stderr);
  assert.match(b.stderr, /data: prepared rows from .*rows\.jsonl \(recipe miso-para\)/);
  const c = run('train', '--config', config('flag', '{name: sft}'), '--no-progress', '--prepared', out);
  assert.equal(c.code, 0, c.stderr);
  const metrics = (n: string): string[] => readFileSync(join(tmp, n, 'metrics.jsonl'), 'utf8').trim().split('\n')
    .map((l) => JSON.parse(l) as Record<string, number>).map((m) => JSON.stringify([m.step, m.loss, m.eval_loss, m.tokens]));
  assert.deepEqual(metrics('fromfile'), metrics('inline'));
  assert.deepEqual(metrics('flag'), metrics('inline'));
});

test('prepare: errors name the file (bad recipe key, truncated rows file)', () => {
  const bad = run('prepare', '--config', config('bad', '{name: miso-para, max_input: 3}'));
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^mixtune: .*bad\.yaml: unknown key recipe\.max_input\n$/);
  const out = join(tmp, 'cut.jsonl');
  assert.equal(run('prepare', '--config', config('cut'), '--out', out).code, 0);
  const lines = readFileSync(out, 'utf8').trim().split('\n');
  writeFileSync(out, lines.slice(0, -1).join('\n') + '\n');
  const t = run('train', '--config', config('cut'), '--prepared', out, '--no-progress');
  assert.equal(t.code, 1);
  assert.match(t.stderr, /cut\.jsonl: holds \d+ train and 0 eval rows, the header says \d+ and 1 \(truncated file\?\)/);
  assert.ok(!existsSync(join(tmp, 'cut', 'final')));
});

test('prepare: recipe moi on glaive tool-call data with a llama2.c model: the plain template renders tools, calls (trained) and results (not)', () => {
  const p = join(tmp, 'moi-tools.yaml');
  writeFileSync(p, `model: ${longContextModel('stories-16k-tools')}
data:
  template: plain
  datasets:
    - path: ${join(sharedDir(), 'data', 'tool_use', 'glaive_toolcall_en_demo.json')}
      domain: tool
      limit: 8
    - path: ${data}
      domain: chat
      limit: 4
  max_len: 2048
recipe: {name: moi}
`);
  const r = run('prepare', '--config', p, '--show', '12');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /examples per domain: tool=8 .*\(total 12\)/); // the other file's records name their own domains
  // the tool list in the system part, no loss
  assert.match(r.stdout, /\\n\\n### Tools:\\n\{"name": "search_recipes", "description": "Search for recipes based on ingredients", "parameters": /);
  // a call is assistant output: trained through </s>; the tool result that follows is not
  assert.match(r.stdout, /### Assistant:\\n⟦<tool_call>\\n\{"name": "search_recipes", "arguments": \{"ingredients": \["chicken", "bell peppers", "rice"\]\}\}\\n<\/tool_call><\/s>⟧ ?\\n\\n### Tool result:\\n\{"recipes": /);
  assert.doesNotMatch(r.stdout, /⟦[^⟧]*### Tool result/);
});

test('prepare / train: miso-para on data without constraints warns that it is plain SFT, naming the dataset and its format', () => {
  const fb = join(sharedDir(), 'data', 'followbench', 'example_constraints.json');
  // FollowBench prompts are longer than stories260K's 512-token context: give an HF conversion of
  // it a longer one, deliberately (the config check refuses positions beyond the context)
  const long = longContextModel('stories-16k-fb');
  const p = join(tmp, 'miso-fb.yaml');
  writeFileSync(p, `model: ${long}
output_dir: ${join(tmp, 'miso-fb')}
data:
  datasets:
    - path: ${fb}
      limit: 4
  max_len: 16384
recipe: {name: miso-para}
training: {max_steps: 1}
`);
  const warning = new RegExp(`warning: miso-para made no MISO group: of the 4 training examples none carries constraints .*so all were trained as plain SFT \\(augmented_examples=0\\)\\. ` +
    `${fb.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: 4 examples \\(format followbench\\), 0 with constraints\\. miso-para needs multi-constraint records`);
  const r = run('prepare', '--config', p);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, warning);
  const j = run('prepare', '--config', p, '--json');
  assert.ok((JSON.parse(j.stdout).warnings as string[]).some((w) => w.startsWith('miso-para made no MISO group')));
  const t = run('train', '--config', p, '--no-progress');
  assert.equal(t.code, 0, t.stderr);
  assert.match(t.stderr, warning);
  assert.ok((JSON.parse(readFileSync(join(tmp, 'miso-fb', 'summary.json'), 'utf8')).data.warnings as string[]).some((w) => /^miso-para made no MISO group/.test(w)));
  // data with constraints: no warning
  const ok = run('prepare', '--config', config('miso-ok'), '--json');
  assert.deepEqual(JSON.parse(ok.stdout.split('\n')[0]!).warnings, []);
});
