import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { sharedDir } from '../src/util/paths.js';
import { MixtuneError } from '../src/util/errors.js';
import { registerIfevalCommand } from '../src/cli/eval-ifeval.js';
import { runIfevalEval, type IfevalSummary } from '../src/eval/ifeval/run.js';
import { composeInstruction } from '../src/data/readers.js';
import { renderIfevalConstraint } from '../src/data/ifeval-constraints.js';

const data = join(sharedDir(), 'data', 'ifeval');
const INPUT = join(data, 'input_data.jsonl');
const GPT4 = join(data, 'input_response_data_gpt4_20231107_145030.jsonl');
const lines = (p: string): string[] => readFileSync(p, 'utf8').split('\n').filter((l) => l.trim() !== '');
const tmp = (): string => mkdtempSync(join(tmpdir(), 'mixtune-ifeval-'));
const quiet = { print: () => {}, progress: false } as const;

async function expectError(p: Promise<unknown>, parts: string[]): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof MixtuneError, String(e));
    assert.ok(!e.message.includes('\n'), 'one line');
    for (const s of parts) assert.ok(e.message.includes(s), `'${e.message}' lacks '${s}'`);
    return true;
  });
}

test('eval ifeval: scores existing responses, writes the reference result format, reports prompts without a response', async () => {
  const dir = tmp();
  const inputs = lines(INPUT).slice(0, 30);
  const input = join(dir, 'in.jsonl');
  writeFileSync(input, inputs.join('\n') + '\n');
  const wanted = new Set(inputs.map((l) => (JSON.parse(l) as { prompt: string }).prompt));
  const resp = lines(GPT4).filter((l) => wanted.has((JSON.parse(l) as { prompt: string }).prompt)).slice(0, 25);
  const responses = join(dir, 'resp.jsonl');
  writeFileSync(responses, resp.join('\n') + '\n');
  let printed = '';
  const out = join(dir, 'out');
  const s = await runIfevalEval({ input, responses, out, print: (t) => { printed += t; }, progress: false });
  assert.equal(s.prompts, 30);
  assert.equal(s.scored, 25);
  assert.equal(s.missing_responses.length, 5);
  const strict = lines(join(out, 'eval_results_strict.jsonl')).map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(strict.length, 25);
  assert.deepEqual(Object.keys(strict[0]!).sort(), ['follow_all_instructions', 'follow_instruction_list', 'instruction_id_list', 'prompt', 'response']);
  // identical to the reference's own results for these prompts
  const ref = new Map(lines(join(data, 'eval_results_loose.jsonl')).map((l) => { const r = JSON.parse(l) as { prompt: string }; return [r.prompt, r]; }));
  for (const l of lines(join(out, 'eval_results_loose.jsonl'))) {
    const r = JSON.parse(l) as { prompt: string; follow_instruction_list: boolean[] };
    assert.deepEqual(r.follow_instruction_list, (ref.get(r.prompt) as unknown as { follow_instruction_list: boolean[] }).follow_instruction_list);
  }
  const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as IfevalSummary;
  assert.equal(summary.scored, 25);
  assert.ok(summary.strict.prompt_level.accuracy <= summary.loose.prompt_level.accuracy);
  assert.ok(Object.keys(summary.strict.per_category).length > 3);
  assert.match(printed, /prompt-level accuracy/);
  assert.match(printed, /instruction-level accuracy/);
  assert.match(printed, /5 without a response/);
  // --limit
  const s2 = await runIfevalEval({ input, responses, out: join(dir, 'out2'), limit: 4, ...quiet });
  assert.equal(s2.prompts, 4);
});

test('eval ifeval: bad input files give one-line errors naming file:line and field', async () => {
  const dir = tmp();
  const good = lines(INPUT)[0]!;
  const bad = (name: string, second: string): string => {
    const p = join(dir, name);
    writeFileSync(p, good + '\n' + second + '\n');
    return p;
  };
  const responses = join(dir, 'r.jsonl');
  writeFileSync(responses, '');
  const out = join(dir, 'out');
  await expectError(runIfevalEval({ input: bad('a.jsonl', '{"prompt": "x", "instruction_id_list": ["nope:id"], "kwargs": [{}]}'), responses, out, ...quiet }), ['a.jsonl:2', 'instruction_id_list[0]', 'nope:id']);
  await expectError(runIfevalEval({ input: bad('b.jsonl', '{"prompt": "x", "instruction_id_list": ["length_constraints:number_words"], "kwargs": [{"relation": "at least"}]}'), responses, out, ...quiet }), ['b.jsonl:2', 'kwargs[0].num_words']);
  await expectError(runIfevalEval({ input: bad('c.jsonl', '{"prompt": "x", "instruction_id_list": ["punctuation:no_comma"]'), responses, out, ...quiet }), ['c.jsonl:2', 'not valid JSON']);
  await expectError(runIfevalEval({ input: bad('d.jsonl', '{"prompt": 3, "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}'), responses, out, ...quiet }), ['d.jsonl:2', 'prompt']);
  const badResp = join(dir, 'rb.jsonl');
  writeFileSync(badResp, '{"prompt": "x", "response": null}\n');
  await expectError(runIfevalEval({ input: INPUT, responses: badResp, out, ...quiet }), ['rb.jsonl:1', 'response']);
  await expectError(runIfevalEval({ input: INPUT, out, ...quiet }), ['--responses', '--model']);
});

test('eval ifeval --flatten: rebuilds one prompt per instruction from structured data; IFEval itself needs --flat-input', async () => {
  const dir = tmp();
  const rec = {
    key: 7, base: 'Write a short note about cats.', prompt: 'Write a short note about cats. Do not use commas and end with "Meow."',
    instruction_id_list: ['punctuation:no_comma', 'startend:end_checker'], kwargs: [{}, { end_phrase: 'Meow.' }],
  };
  const input = join(dir, 'in.jsonl');
  writeFileSync(input, JSON.stringify(rec) + '\n' + JSON.stringify({ key: 8, prompt: 'Say hi without commas.', instruction_id_list: ['punctuation:no_comma'], kwargs: [{}] }) + '\n');
  const p1 = composeInstruction(rec.base, [renderIfevalConstraint('punctuation:no_comma', {})]);
  const p2 = composeInstruction(rec.base, [renderIfevalConstraint('startend:end_checker', { end_phrase: 'Meow.' })]);
  const responses = join(dir, 'r.jsonl');
  writeFileSync(responses, [
    { prompt: p1, response: 'Cats sleep a lot' },
    { prompt: p2, response: 'Cats, dogs. Meow.' },
    { prompt: 'Say hi without commas.', response: 'hi, there' },
  ].map((r) => JSON.stringify(r)).join('\n') + '\n');
  const s = await runIfevalEval({ input, responses, out: join(dir, 'out'), flatten: true, ...quiet });
  assert.equal(s.mode, 'flatten');
  assert.equal(s.prompts, 3);
  assert.equal(s.scored, 3);
  assert.equal(s.strict.prompt_level.followed, 2);
  assert.deepEqual(s.by_source?.strict, { followed: 1, total: 2, accuracy: 0.5 });
  // the real IFEval prompts have no structured form
  await expectError(runIfevalEval({ input: INPUT, responses, out: join(dir, 'o2'), flatten: true, ...quiet }), ['--flatten', 'weave', '--flat-input']);
  // a user-supplied flattened file
  const flat = join(dir, 'flat.jsonl');
  writeFileSync(flat, [
    { prompt: 'A', instruction_id: 'punctuation:no_comma', kwargs: {}, source_key: 1 },
    { prompt: 'B', instruction_id_list: ['length_constraints:number_words'], kwargs: [{ num_words: 2, relation: 'at least' }], source_key: 1 },
    { prompt: 'C', instruction_id: 'startend:quotation', source_key: 2 },
  ].map((r) => JSON.stringify(r)).join('\n') + '\n');
  const fr = join(dir, 'fr.jsonl');
  writeFileSync(fr, ['{"prompt": "A", "response": "no commas"}', '{"prompt": "B", "response": "two words"}', '{"prompt": "C", "response": "unquoted"}'].join('\n') + '\n');
  const s3 = await runIfevalEval({ flatInput: flat, responses: fr, out: join(dir, 'o3'), ...quiet });
  assert.equal(s3.mode, 'flat-input');
  assert.equal(s3.strict.prompt_level.followed, 2);
  assert.deepEqual(s3.by_source?.strict, { followed: 1, total: 2, accuracy: 0.5 });
  const badFlat = join(dir, 'bf.jsonl');
  writeFileSync(badFlat, '{"prompt": "A", "instruction_id_list": ["punctuation:no_comma", "startend:quotation"]}\n');
  await expectError(runIfevalEval({ flatInput: badFlat, responses: fr, out: join(dir, 'o4'), ...quiet }), ['bf.jsonl:1', 'exactly one']);
});

test('eval ifeval --model: generates greedily into responses.jsonl, appends per item, a rerun skips finished prompts', async () => {
  const fx = join(sharedDir(), 'fixtures', 'stories260K');
  const dir = tmp();
  const input = join(dir, 'in.jsonl');
  writeFileSync(input, lines(INPUT).slice(0, 4).join('\n') + '\n');
  const out = join(dir, 'out');
  const common = { input, out, model: join(fx, 'stories260K.bin'), tokenizer: join(fx, 'tok512.bin'), maxNewTokens: 6, ...quiet };
  const s1 = await runIfevalEval({ ...common, limit: 2 });
  assert.equal(s1.scored, 2);
  const first = lines(join(out, 'responses.jsonl'));
  assert.equal(first.length, 2);
  // simulate an interrupted append: a truncated last line is dropped and regenerated
  writeFileSync(join(out, 'responses.jsonl'), first.join('\n') + '\n{"prompt": "trunc');
  const s2 = await runIfevalEval(common);
  assert.equal(s2.scored, 4);
  const all = lines(join(out, 'responses.jsonl'));
  assert.equal(all.length, 4);
  assert.deepEqual(all.slice(0, 2), first, 'finished items are kept, not regenerated');
  assert.ok(existsSync(join(out, 'summary.json')));
  // greedy generation is deterministic
  const again = tmp();
  await runIfevalEval({ ...common, out: again, limit: 2 });
  assert.deepEqual(lines(join(again, 'responses.jsonl')), first);
});

test('eval ifeval: registerIfevalCommand adds the subcommand with its options', async () => {
  const program = new Command().exitOverride();
  const evalCmd = program.command('eval').exitOverride();
  registerIfevalCommand(evalCmd);
  const sub = evalCmd.commands.find((c) => c.name() === 'ifeval');
  assert.ok(sub);
  const flags = sub.options.map((o) => o.long);
  for (const f of ['--input', '--responses', '--model', '--out', '--limit', '--flatten', '--flat-input', '--max-new-tokens', '--no-progress']) assert.ok(flags.includes(f), f);
  const dir = tmp();
  const input = join(dir, 'in.jsonl');
  writeFileSync(input, lines(INPUT).slice(0, 3).join('\n') + '\n');
  const origWrite = process.stdout.write.bind(process.stdout);
  let printed = '';
  process.stdout.write = ((s: string) => { printed += s; return true; }) as typeof process.stdout.write;
  try {
    await program.parseAsync(['eval', 'ifeval', '--input', input, '--responses', GPT4, '--out', join(dir, 'o'), '--limit', '2'], { from: 'user' });
  } finally {
    process.stdout.write = origWrite;
  }
  assert.match(printed, /2\/2 prompts scored/);
  assert.ok(existsSync(join(dir, 'o', 'eval_results_strict.jsonl')));
});
