import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readDataset } from '../src/data/readers.js';
import { packGroups, causalGroup, IGNORE, type Group } from '../src/data/pack.js';
import { makeMicroBatch } from '../src/train/batch.js';
import { sharedDir } from '../src/util/paths.js';
import { MixtuneError } from '../src/util/errors.js';
import { Rng } from '../src/util/rng.js';

const data = join(sharedDir(), 'data');
const tmp = mkdtempSync(join(tmpdir(), 'mixtune-data-'));

test('readers: Alpaca, ShareGPT (incl. tool turns), OpenAI messages and prompt/completion with column renames', () => {
  const alpaca = readDataset(join(data, 'chat', 'alpaca_tiny.json'), { domain: 'chat' });
  assert.ok(alpaca.examples.length > 0);
  const a0 = alpaca.examples[0]!;
  assert.equal(a0.domain, 'chat');
  assert.deepEqual(a0.messages.map((m) => m.role), ['user', 'assistant']);
  assert.ok(a0.messages[0]!.content.includes("Words: ['Hello', 'world']."));
  assert.match(a0.id, /alpaca_tiny\.json#0$/);

  const share = readDataset(join(data, 'chat', 'sharegpt_conversation.json'));
  assert.equal(share.examples.length, 1);
  assert.equal(share.examples[0]!.messages[0]!.role, 'user');

  const glaive = readDataset(join(data, 'tool_use', 'glaive_toolcall_en_demo.json'), { limit: 20 });
  assert.equal(glaive.examples.length, 20);
  assert.ok(glaive.examples.some((e) => e.messages.some((m) => m.role === 'tool')));

  const gsm = readDataset(join(data, 'gsm8k', 'test.jsonl'), { columns: { prompt: 'question', completion: 'answer' }, domain: 'math', limit: 5 });
  assert.equal(gsm.examples.length, 5);
  assert.match(gsm.examples[0]!.messages[1]!.content, /#### /);
  assert.match(gsm.examples[0]!.id, /test\.jsonl:1$/);

  const p = join(tmp, 'msgs.jsonl');
  writeFileSync(p, JSON.stringify({ messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }] }) + '\n\n');
  const m = readDataset(p).examples[0]!;
  assert.equal(m.system, 'Be brief.');
  assert.equal(m.messages.length, 2);
});

test('readers: bad records name file:line and the field; --skip-bad counts them', () => {
  const p = join(tmp, 'bad.jsonl');
  writeFileSync(p, [
    JSON.stringify({ messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'a' }] }),
    '{"messages": [ broken',
    JSON.stringify({ messages: [{ role: 'wizard', content: 'q' }, { role: 'assistant', content: 'a' }] }),
    JSON.stringify({ messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: '  ' }] }),
    JSON.stringify({ conversations: [{ from: 'human', value: 'q' }] }),
    JSON.stringify({ text: 'no format' }),
  ].join('\n'));
  assert.throws(() => readDataset(p), (e: unknown) => e instanceof MixtuneError && /bad\.jsonl:2: malformed JSON/.test(e.message));
  const lines = (i: number): string => join(tmp, `bad${i}.jsonl`);
  const cases: [number, RegExp][] = [
    [3, /bad3\.jsonl:1: field messages\[0\]\.role: unknown role "wizard"/],
    [4, /bad4\.jsonl:1: field messages\[1\]\.content is empty/],
    [5, /bad5\.jsonl:1: no assistant turn/],
    [6, /bad6\.jsonl:1: unrecognized record/],
  ];
  const src = readFileSyncLines(p);
  for (const [line, re] of cases) {
    writeFileSync(lines(line), src[line - 1]! + '\n');
    assert.throws(() => readDataset(lines(line)), (e: unknown) => e instanceof MixtuneError && re.test(e.message) && !e.message.includes('\n'));
  }
  const ok = join(tmp, 'mixed.jsonl');
  writeFileSync(ok, [src[0], src[2], src[3], src[0]].join('\n'));
  const r = readDataset(ok, { skipBad: true });
  assert.equal(r.examples.length, 2);
  assert.equal(r.skipped, 2);
});

test('readers: glaive tool data keeps the tool schemas and turns function_call into HF tool_calls (not assistant text)', () => {
  const path = join(data, 'tool_use', 'glaive_toolcall_en_demo.json');
  const r = readDataset(path);
  assert.equal(r.examples.length, 300);
  assert.equal(r.examples.filter((e) => e.tools).length, 191); // the other 109 have "tools": "[]"
  const e = r.examples[0]!;
  assert.deepEqual(e.tools, [{
    type: 'function',
    function: {
      name: 'search_recipes', description: 'Search for recipes based on ingredients',
      parameters: { type: 'object', properties: { ingredients: { type: 'array', items: { type: 'string' }, description: 'The ingredients to search for' } }, required: ['ingredients'] },
    },
  }]);
  assert.deepEqual(e.messages.map((m) => m.role), ['user', 'assistant', 'user', 'assistant', 'tool', 'assistant', 'user', 'assistant']);
  assert.deepEqual(e.messages[3], { role: 'assistant', content: '', tool_calls: [{ type: 'function', function: { name: 'search_recipes', arguments: { ingredients: ['chicken', 'bell peppers', 'rice'] } } }] });
  assert.match(e.messages[4]!.content, /^\{"recipes": \[\{"name": "Chicken and Bell Pepper Stir Fry"/);
  // every function_call turn of the file is a tool call
  const calls = r.examples.flatMap((x) => x.messages.filter((m) => m.tool_calls));
  assert.equal(calls.length, 211);
  assert.ok(calls.every((m) => m.content === '' && m.tool_calls!.length === 1));
});

test('readers: OpenAI tool_calls (JSON-string arguments parsed), tool_call_id and tools; malformed calls name the field', () => {
  const p = join(tmp, 'openai-tools.jsonl');
  const call = { id: 'abc123xyz', type: 'function', function: { name: 'add', arguments: '{"a": 1, "b": 2}' } };
  writeFileSync(p, [
    JSON.stringify({
      tools: [{ type: 'function', function: { name: 'add', parameters: { type: 'object' } } }],
      messages: [{ role: 'user', content: '1+2?' }, { role: 'assistant', content: null, tool_calls: [call] }, { role: 'tool', tool_call_id: 'abc123xyz', content: '3' }, { role: 'assistant', content: '3.' }],
    }),
    JSON.stringify({ conversations: [{ from: 'human', value: 'q' }, { from: 'function_call', value: 'add(1, 2)' }, { from: 'gpt', value: 'a' }] }),
    JSON.stringify({ messages: [{ role: 'user', content: 'q' }, { role: 'assistant', tool_calls: [{ function: { name: 'add', arguments: '{broken' } }] }] }),
    JSON.stringify({ tools: '[{"description": "no name"}]', messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'a' }] }),
    JSON.stringify({ tools: [], messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'a', tool_calls: [] }] }),
  ].join('\n') + '\n');
  const r = readDataset(p, { skipBad: true });
  assert.equal(r.examples.length, 2);
  assert.deepEqual(r.examples[1]!.messages[1], { role: 'assistant', content: 'a' }); // an empty tool_calls list is no call
  assert.equal(r.examples[1]!.tools, undefined);
  const e = r.examples[0]!;
  assert.deepEqual(e.tools, [{ type: 'function', function: { name: 'add', parameters: { type: 'object' } } }]);
  assert.deepEqual(e.messages[1], { role: 'assistant', content: '', tool_calls: [{ type: 'function', id: 'abc123xyz', function: { name: 'add', arguments: { a: 1, b: 2 } } }] });
  assert.deepEqual(e.messages[2], { role: 'tool', content: '3', tool_call_id: 'abc123xyz' });
  assert.equal(r.skipped, 3);
  assert.match(r.skipReasons[0]!, /openai-tools\.jsonl:2: field conversations\[1\]\.value: a function_call turn must be JSON/);
  assert.match(r.skipReasons[1]!, /openai-tools\.jsonl:3: field messages\[1\]\.tool_calls\[0\]\.arguments is a string but not valid JSON/);
  assert.match(r.skipReasons[2]!, /openai-tools\.jsonl:4: field tools\[0\] must be a function schema with a name/);
});

test('readers: an unrecognized record names file:line and its fields and suggests the columns: mapping, not --skip-bad', () => {
  const one = (path: string, re: RegExp): void => {
    assert.throws(() => readDataset(path), (e: unknown) => e instanceof MixtuneError && re.test(e.message) && !e.message.includes('--skip-bad') && !e.message.includes('\n'));
  };
  one(join(data, 'gsm8k', 'train.jsonl'), /gsm8k\/train\.jsonl:1: unrecognized record \(fields: question, answer\).*map its fields in the dataset's config with columns: \{prompt: question, completion: answer\}/);
  one(join(data, 'math500', 'test_ori.jsonl'), /test_ori\.jsonl:1: unrecognized record \(fields: problem, solution, answer, subject, level, unique_id\).*columns: \{prompt: problem, completion: solution\}/);
  const p = join(tmp, 'prompt-answer.jsonl');
  writeFileSync(p, JSON.stringify({ prompt: 'q', answer: 'a' }) + '\n');
  one(p, /prompt-answer\.jsonl:1: .*columns: \{completion: answer\}\)$/);
  // the suggestion works
  assert.equal(readDataset(p, { columns: { completion: 'answer' } }).examples[0]!.messages[1]!.content, 'a');
  // fields that do not look like a prompt and an answer: the generic mapping, and skipping stays an option
  const q = join(tmp, 'text.jsonl');
  writeFileSync(q, JSON.stringify({ text: 'x', code: 'y' }) + '\n');
  assert.throws(() => readDataset(q), /text\.jsonl:1: unrecognized record \(fields: text, code\).*columns: \{prompt: <prompt field>, completion: <response field>\}, or use --skip-bad/);
});

function readFileSyncLines(p: string): string[] {
  return readFileSync(p, 'utf8').split('\n');
}

function randomGroups(rng: Rng, n: number, maxLen: number): Group[] {
  return Array.from({ length: n }, (_, i) => {
    const len = 2 + rng.int(maxLen - 1);
    const ids = Array.from({ length: len }, () => 3 + rng.int(100));
    const labels = ids.map((id, t) => (t >= len / 2 ? id : IGNORE));
    return causalGroup(ids, labels, `g${i}`);
  });
}

test('packing: best-fit decreasing fills rows, keeps every group intact, positions restart per group', () => {
  const rng = new Rng(1);
  const groups = randomGroups(rng, 400, 200);
  const { rows, stats } = packGroups(groups, 512);
  assert.equal(stats.groups, 400);
  assert.ok(stats.efficiency > 0.95, `efficiency ${stats.efficiency}`);
  assert.equal(rows.reduce((s, r) => s + r.groups.length, 0), 400);
  let total = 0;
  for (const r of rows) {
    assert.ok(r.length <= 512);
    total += r.length;
    for (let t = 0; t < r.length; t++) {
      if (t === 0 || r.group[t] !== r.group[t - 1]) assert.equal(r.positions[t], 0);
      else assert.equal(r.positions[t], r.positions[t - 1]! + 1);
      if (t + 1 < r.length && r.group[t + 1] !== r.group[t]) assert.equal(r.targets[t], IGNORE, 'no target across groups');
    }
  }
  assert.equal(total, groups.reduce((s, g) => s + g.tokens.length, 0));
  const single = packGroups(groups, 512, { pack: false });
  assert.equal(single.rows.length, 400);
});

test('packing: overflow truncate / drop / error are counted', () => {
  const long = causalGroup(Array.from({ length: 50 }, (_, i) => i + 3), Array.from({ length: 50 }, (_, i) => i + 3), 'long.jsonl:7');
  const short = causalGroup([5, 6, 7], [IGNORE, 6, 7], 'short');
  const t = packGroups([long, short], 20, { overflow: 'truncate' });
  assert.equal(t.stats.truncated, 1);
  assert.equal(t.rows.reduce((s, r) => s + r.length, 0), 23);
  const d = packGroups([long, short], 20, { overflow: 'drop' });
  assert.equal(d.stats.dropped, 1);
  assert.equal(d.stats.groups, 1);
  assert.throws(() => packGroups([long, short], 20, { overflow: 'error' }), /long\.jsonl:7: 50 tokens exceed max_len 20/);
});

test('micro-batch: padding is its own group with no targets; group ids are global', () => {
  const rng = new Rng(2);
  const { rows } = packGroups(randomGroups(rng, 10, 30), 64);
  const mb = makeMicroBatch(rows.slice(0, 2), 0);
  const T = mb.seq;
  assert.equal(mb.batch, 2);
  assert.ok(mb.layout, 'packed rows need a layout');
  assert.equal(makeMicroBatch(packGroups(randomGroups(rng, 2, 30), 64, { pack: false }).rows).layout, undefined);
  const r1 = rows[1]!;
  const g0count = rows[0]!.groups.length;
  assert.equal(mb.layout!.group[T], g0count); // row 1 starts after row 0's groups (+ padding group if any)
  if (r1.length < T) {
    const padGroup = mb.layout!.group[T + T - 1]!;
    assert.equal(mb.layout!.nInputs[padGroup], 1);
    assert.equal(mb.targets[T + T - 1], IGNORE);
  }
  assert.equal(mb.layout!.nInputs.length, new Set(mb.layout!.group).size);
});

test('readers: explicit multi-constraint records keep the bare instruction and the constraint list', () => {
  const p = join(tmp, 'cons.jsonl');
  writeFileSync(p, JSON.stringify({ instruction: 'Write a story about a cat.', constraints: ['Use at most 50 words.', 'End with "The end."'], output: 'A cat slept. The end.' }) + '\n');
  const ex = readDataset(p).examples[0]!;
  assert.equal(ex.base, 'Write a story about a cat.');
  assert.deepEqual(ex.constraints, ['Use at most 50 words.', 'End with "The end."']);
  assert.equal(ex.messages[0]!.content, 'Write a story about a cat. Use at most 50 words. End with "The end."');
  assert.equal(ex.messages[1]!.content, 'A cat slept. The end.');
  writeFileSync(p, JSON.stringify({ instruction: 'x', constraints: 'no', output: 'y' }) + '\n');
  assert.throws(() => readDataset(p), /cons\.jsonl:1: field constraints must be a list of strings/);
});
