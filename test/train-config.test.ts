import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTrainConfig, validateTrainConfig } from '../src/train/config.js';
import { templateFor } from '../src/train/setup.js';
import { encodeConversation, type ChatMessage } from '../src/io/chat.js';
import { HfTokenizer } from '../src/io/hf-tokenizer.js';
import { Llama2cTokenizer } from '../src/io/llama2c-tokenizer.js';
import { sharedDir } from '../src/util/paths.js';
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

test('data.chat_template: a template file relative to the config, a tokenizer_config.json or inline Jinja overrides the model folder\'s template', () => {
  const F = join(sharedDir(), 'fixtures');
  const llama3 = HfTokenizer.load(join(F, 'llama3')); // its own template has no tool support
  const dir = join(tmp, 'tpl');
  mkdirSync(dir, { recursive: true });
  const l31 = readFileSync(join(F, 'llama.cpp', 'templates', 'meta-llama-Llama-3.1-8B-Instruct.jinja'), 'utf8');
  writeFileSync(join(dir, 'llama31.jinja'), l31);
  const p = join(tmp, 'tpl.yaml');
  writeFileSync(p, 'model: m\ndata:\n  datasets: [{path: d.jsonl}]\n  chat_template: tpl/llama31.jinja\n');
  const cfg = loadTrainConfig(p);
  assert.equal(cfg.data.chat_template, join(dir, 'llama31.jinja'));
  const tpl = templateFor(llama3, cfg);
  assert.equal(tpl.text, l31);
  // Llama 3.1 renders the tool call as its JSON {"name", "parameters"}; it is trained
  const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Current weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
  const msgs: ChatMessage[] = [
    { role: 'user', content: 'Weather in Paris?' },
    { role: 'assistant', content: '', tool_calls: [{ type: 'function', function: { name: 'get_weather', arguments: { city: 'Paris' } } }] },
    { role: 'tool', content: '21' },
    { role: 'assistant', content: 'It is 21 degrees.' },
  ];
  const r = encodeConversation(llama3, tpl, msgs, { tools });
  const runs = r.assistantSpans.map((sp) => llama3.decode(r.labels.slice(sp.start, sp.end), { special: true }));
  assert.deepEqual(runs, ['{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>', 'It is 21 degrees.<|eot_id|>']);
  // a tokenizer_config.json: its chat_template
  const qwenCfg = join(F, 'qwen2.5', 'tokenizer_config.json');
  const fromJson = templateFor(llama3, validateTrainConfig({ model: 'm', data: { datasets: [{ path: 'd' }], chat_template: qwenCfg } }, 'train.yaml', tmp));
  assert.equal(fromJson.text, (JSON.parse(readFileSync(qwenCfg, 'utf8')) as { chat_template: string }).chat_template);
  // inline Jinja is not a path
  const inline = '{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}';
  const ci = validateTrainConfig({ model: 'm', data: { datasets: [{ path: 'd' }], chat_template: inline } }, 'train.yaml', tmp);
  assert.equal(ci.data.chat_template, inline);
  const tok512 = Llama2cTokenizer.load(join(F, 'stories260K', 'tok512.bin'));
  const ti = templateFor(tok512, ci);
  assert.equal(ti.isPlain, false);
  assert.equal(ti.render([{ role: 'user', content: 'hi' }]), '<s><user>hi');
  // without it, the model folder's template as before
  assert.equal(templateFor(llama3, validateTrainConfig({ model: 'm', data: { datasets: [{ path: 'd' }] } }, 'train.yaml', tmp)).text, llama3.config!.chat_template);
  // errors: both template: plain and chat_template; a missing file
  assert.throws(() => validateTrainConfig({ model: 'm', data: { datasets: [{ path: 'd' }], template: 'plain', chat_template: inline } }, 'train.yaml'),
    (e: unknown) => e instanceof MixtuneError && e.message === 'train.yaml: data: give template: plain or chat_template, not both');
  const missing = validateTrainConfig({ model: 'm', data: { datasets: [{ path: 'd' }], chat_template: 'nope.jinja' } }, 'train.yaml', tmp);
  assert.throws(() => templateFor(tok512, missing), (e: unknown) => e instanceof MixtuneError && e.message.startsWith(`${join(tmp, 'nope.jinja')}: cannot read the chat template (ENOENT)`));
});
