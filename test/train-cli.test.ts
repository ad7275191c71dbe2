import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot, sharedDir } from '../src/util/paths.js';
import { runCli as run, assertOneLineError } from './util.js';
import { ChatTemplate } from '../src/io/chat.js';
import { HfTokenizer } from '../src/io/hf-tokenizer.js';

const bin = join(packageRoot(), 'bin', 'mixtune.js');
const fix = join(sharedDir(), 'fixtures', 'stories260K');
const tmp = mkdtempSync(join(tmpdir(), 'mixtune-train-cli-'));

const names = ['Lily', 'Tom', 'Ben', 'Sue', 'Max', 'Mia', 'Sam', 'Ann', 'Tim', 'Zoe'];
const things = ['a red ball', 'a big dog', 'a small cat', 'a blue car', 'a tall tree', 'a happy bird', 'a green frog'];
const rows: string[] = [];
for (let i = 0; i < 60; i++) {
  const n = names[i % names.length]!;
  const t = things[(i * 3) % things.length]!;
  rows.push(JSON.stringify({ messages: [{ role: 'user', content: `Write about ${n} and ${t}.` }, { role: 'assistant', content: `${n} found ${t} in the park. ${n} was happy.` }] }));
}
const data = join(tmp, 'stories.jsonl');
writeFileSync(data, rows.join('\n') + '\n');

function config(name: string, extra = ''): string {
  const p = join(tmp, `${name}.yaml`);
  writeFileSync(p, `model: ${join(fix, 'stories260K.bin')}
tokenizer: ${join(fix, 'tok512.bin')}
output_dir: ${join(tmp, name)}
seed: 1
data:
  datasets:
    - path: ${data}
      domain: stories
  max_len: 128
  eval_split: 0.1
training:
  max_steps: 8
  micro_batch_size: 2
  grad_accum: 2
  lr: 0.002
  warmup_steps: 2
  eval_every: 4
${extra}`);
  return p;
}

function stepLosses(dir: string): number[] {
  return readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n')
    .map((l) => JSON.parse(l) as { loss?: number }).filter((m) => m.loss !== undefined).map((m) => m.loss!);
}

test('train cli: full fine-tuning lowers the loss, writes metrics, summary and a loadable HF folder', () => {
  const r = run('train', '--config', config('full'), '--no-progress');
  assert.equal(r.code, 0, r.stderr);
  const out = join(tmp, 'full');
  const losses = stepLosses(out);
  assert.equal(losses.length, 8);
  assert.ok(losses[7]! < losses[0]! * 0.8, `loss ${losses[0]} -> ${losses[7]}`);
  const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
  for (const k of ['steps', 'tokens', 'seconds', 'peak_rss_mb', 'final_loss', 'eval_loss']) assert.ok(k in summary, k);
  assert.equal(summary.steps, 8);
  assert.equal(summary.data.truncated + summary.data.dropped, 0);
  assert.ok(summary.data.packing_efficiency > 0.5);
  assert.deepEqual(readdirSync(join(out, 'final')).sort(), ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
  const g = run('generate', '--model', join(out, 'final'), '--prompt', 'Lily', '--temperature', '0', '--max-new-tokens', '10');
  assert.equal(g.code, 0, g.stderr);
  assert.ok(g.stdout.trim().length > 0);
});

test('train cli: LoRA with dropout, stop and --resume gives the same losses as one run', () => {
  const lora = 'lora:\n  rank: 4\n  alpha: 8\n  dropout: 0.1\n  targets: [q, k, v, o, gate, up, down]\n';
  const a = run('train', '--config', config('lora-a', lora), '--no-progress');
  assert.equal(a.code, 0, a.stderr);
  const b1 = run('train', '--config', config('lora-b', lora), '--no-progress', '--stop-after', '4');
  assert.equal(b1.code, 0, b1.stderr);
  assert.ok(existsSync(join(tmp, 'lora-b', 'checkpoint-4', 'adapter_model.safetensors')));
  assert.ok(!existsSync(join(tmp, 'lora-b', 'final')));
  const b2 = run('train', '--config', config('lora-b', lora), '--no-progress', '--resume');
  assert.equal(b2.code, 0, b2.stderr);
  assert.match(b2.stderr, /resumed from .*checkpoint-4 at step 4/);
  const la = stepLosses(join(tmp, 'lora-a'));
  const lb = stepLosses(join(tmp, 'lora-b'));
  assert.equal(lb.length, 8);
  for (let i = 0; i < 8; i++) assert.ok(Math.abs(la[i]! - lb[i]!) <= 1e-6 * Math.abs(la[i]!), `step ${i + 1}: ${la[i]} vs ${lb[i]}`);
  assert.ok(la[7]! < la[0]!);
  assert.ok(existsSync(join(tmp, 'lora-a', 'adapter', 'adapter_config.json')));
  assert.deepEqual(readFileSync(join(tmp, 'lora-a', 'final', 'model.safetensors')), readFileSync(join(tmp, 'lora-b', 'final', 'model.safetensors')));
});

test('train cli: a process killed while writing a checkpoint leaves the previous one loadable', async () => {
  const cfg = config('killed', '  save_every: 2\n');
  const out = join(tmp, 'killed');
  const child = spawn(process.execPath, [bin, 'train', '--config', cfg, '--no-progress'], {
    env: { ...process.env, MIXTUNE_TEST_HANG_IN_CHECKPOINT: '4' },
  });
  let err = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no hang message; stderr:\n${err}`)), 60000);
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('hanging mid-write')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', () => reject(new Error(`child exited early:\n${err}`)));
  });
  child.removeAllListeners('exit');
  const exited = new Promise((r) => child.on('exit', r));
  child.kill('SIGKILL');
  await exited;
  const entries = readdirSync(out);
  assert.ok(entries.includes('checkpoint-2'), entries.join(','));
  assert.ok(!entries.includes('checkpoint-4'), 'the interrupted checkpoint must not look complete');
  assert.ok(entries.some((e) => e.startsWith('.checkpoint-4.tmp')), 'the partial write stays in its temporary folder');
  const r = run('train', '--config', cfg, '--no-progress', '--resume');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /resumed from .*checkpoint-2 at step 2/);
  const straight = run('train', '--config', config('straight', '  save_every: 2\n'), '--no-progress');
  assert.equal(straight.code, 0, straight.stderr);
  const a = stepLosses(out);
  const b = stepLosses(join(tmp, 'straight'));
  assert.equal(a.length, 8);
  for (let i = 0; i < 8; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= 1e-6 * Math.abs(b[i]!), `step ${i + 1}`);
});

test('train cli: config and data errors are one line naming the key or file:line; --skip-bad counts', () => {
  const oneLine = (r: { code: number; stderr: string }, re: RegExp): void => assertOneLineError(r, [re]);
  oneLine(run('train', '--config', config('badkey', '  learning_rate: 1\n')), /unknown key training\.learning_rate/);
  oneLine(run('train', '--config', config('badtype'), '--set', 'training.lr=fast'), /training\.lr: .*expected number/);
  oneLine(run('train', '--config', join(tmp, 'missing.yaml')), /missing\.yaml: config file not found/);
  const bad = join(tmp, 'bad.jsonl');
  writeFileSync(bad, rows.slice(0, 10).join('\n') + '\n{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]}\n' + rows.slice(10, 20).join('\n') + '\n');
  const p = config('baddata').replace('baddata', 'baddata');
  writeFileSync(p, readFileSync(p, 'utf8').replace(data, bad));
  oneLine(run('train', '--config', p), /bad\.jsonl:11: field messages\[1\]\.content is empty/);
  const ok = run('train', '--config', p, '--skip-bad', '--no-progress', '--max-steps', '2');
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stderr, /skipped 1/);
  assert.equal(JSON.parse(readFileSync(join(tmp, 'baddata', 'summary.json'), 'utf8')).data.skipped_bad, 1);
});

test('train cli: the exported folder ships the chat template the model was trained with (data.chat_template)', () => {
  const tpl = "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}";
  const withTpl = (name: string, model: string, tokenizer: string): string => {
    const p = config(name, '');
    writeFileSync(p, readFileSync(p, 'utf8')
      .replace(`model: ${join(fix, 'stories260K.bin')}\ntokenizer: ${join(fix, 'tok512.bin')}`, `model: ${model}\ntokenizer: ${tokenizer}`)
      .replace('  max_len: 128\n', `  max_len: 128\n  chat_template: ${JSON.stringify(tpl)}\n`)
      .replace('max_steps: 8', 'max_steps: 1'));
    return p;
  };
  const shipped = (name: string): Record<string, unknown> => JSON.parse(readFileSync(join(tmp, name, 'final', 'tokenizer_config.json'), 'utf8'));
  // llama2.c model: the tokenizer files are written, with the chosen template instead of the plain one
  const a = run('train', '--config', withTpl('tpl-bin', join(fix, 'stories260K.bin'), join(fix, 'tok512.bin')), '--no-progress');
  assert.equal(a.code, 0, a.stderr);
  assert.equal(shipped('tpl-bin').chat_template, tpl);
  // HF folder: its tokenizer_config.json is copied with chat_template replaced, everything else kept
  const hf = join(tmp, 'tpl-hf-model');
  assert.equal(run('convert', '--from', join(fix, 'stories260K.bin'), '--tokenizer', join(fix, 'tok512.bin'), '--to', hf).code, 0);
  const b = run('train', '--config', withTpl('tpl-hf', hf, hf), '--no-progress');
  assert.equal(b.code, 0, b.stderr);
  const orig = JSON.parse(readFileSync(join(hf, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  assert.notEqual(orig.chat_template, tpl);
  assert.deepEqual(shipped('tpl-hf'), { ...orig, chat_template: tpl });
  // generate --chat / eval load the folder's template this way: it is the trained one
  assert.equal(ChatTemplate.forTokenizer(HfTokenizer.load(join(tmp, 'tpl-hf', 'final'))).text, tpl);
});
