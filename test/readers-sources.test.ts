import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { readDataset, composeInstruction, type Example } from '../src/data/readers.js';
import { IFEVAL_INSTRUCTION_IDS, renderIfevalConstraint } from '../src/data/ifeval-constraints.js';
import { insertedSentences } from '../src/data/followbench.js';
import { readParquetObjects } from '../src/data/parquet.js';
import { validateTrainConfig } from '../src/train/config.js';
import { causalGroup, packGroups, type Group } from '../src/data/pack.js';
import { HfTokenizer } from '../src/io/hf-tokenizer.js';
import { ChatTemplate, encodeConversation } from '../src/io/chat.js';
import { sharedDir } from '../src/util/paths.js';
import { MixtuneError } from '../src/util/errors.js';

const data = join(sharedDir(), 'data');
const tmp = mkdtempSync(join(tmpdir(), 'mixtune-sources-'));
const jsonl = (name: string, recs: unknown[]): string => {
  const p = join(tmp, name);
  writeFileSync(p, recs.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return p;
};
const throwsBad = (fn: () => unknown, re: RegExp): void => {
  assert.throws(fn, (e: unknown) => e instanceof MixtuneError && re.test(e.message) && !e.message.includes('\n'));
};

// ---------------------------------------------------------------- IFEval constraint sentences

const IFEVAL_TABLE: [string, Record<string, unknown>, string][] = [
  ['keywords:existence', { keywords: ['correlated', 'experiencing'] }, 'Include the keywords "correlated", "experiencing" in your response.'],
  ['keywords:frequency', { relation: 'at least', keyword: 'story', frequency: 2 }, 'In your response, the word "story" should appear at least 2 times.'],
  ['keywords:forbidden_words', { forbidden_words: ['rock'] }, 'Do not include the word "rock" in your response.'],
  ['keywords:letter_frequency', { let_relation: 'less than', letter: 'q', let_frequency: 5 }, 'In your response, the letter "q" should appear less than 5 times.'],
  ['language:response_language', { language: 'kn' }, 'Your entire response should be in Kannada, no other language is allowed.'],
  ['length_constraints:number_sentences', { relation: 'less than', num_sentences: 6 }, 'Your response should contain less than 6 sentences.'],
  ['length_constraints:number_paragraphs', { num_paragraphs: 2 }, 'There should be 2 paragraphs. Paragraphs are separated with the markdown divider: ***'],
  ['length_constraints:number_words', { relation: 'at least', num_words: 300 }, 'Answer with at least 300 words.'],
  ['length_constraints:nth_paragraph_first_word', { first_word: 'weekend', num_paragraphs: 4, nth_paragraph: 1 },
    'There should be 4 paragraphs. Paragraphs and only paragraphs are separated with each other by two new lines. The 1st paragraph must start with the word "weekend".'],
  ['detectable_content:number_placeholders', { num_placeholders: 12 }, 'The response must contain at least 12 placeholders represented by square brackets, such as [address].'],
  ['detectable_content:postscript', { postscript_marker: 'P.P.S' }, 'At the end of your response, please explicitly add a postscript starting with "P.P.S".'],
  ['detectable_format:number_bullet_lists', { num_bullets: 3 }, 'Your answer must contain exactly 3 bullet points. Use the markdown bullet points such as: * This is a point.'],
  ['detectable_format:constrained_response', {}, 'Answer with one of the following options: "My answer is yes.", "My answer is no.", "My answer is maybe."'],
  ['detectable_format:number_highlighted_sections', { num_highlights: 3 }, 'Highlight at least 3 sections in your answer with markdown, i.e. *highlighted section*.'],
  ['detectable_format:multiple_sections', { section_spliter: 'SECTION', num_sections: 2 }, 'Your response must have 2 sections. Mark the beginning of each section with SECTION X, such as: SECTION 1.'],
  ['detectable_format:json_format', {}, 'Entire output should be wrapped in JSON format. You can use markdown ticks such as ```.'],
  ['detectable_format:title', {}, 'Your answer must contain a title, wrapped in double angular brackets, such as <<poem of joy>>.'],
  ['combination:two_responses', {}, 'Give two different responses. Responses and only responses should be separated by 6 asterisk symbols: ******.'],
  ['combination:repeat_prompt', { prompt_to_repeat: 'Write a poem.' },
    'First repeat the request word for word without change, then give your answer (do not say anything before repeating the request). The request is: Write a poem.'],
  ['startend:end_checker', { end_phrase: 'Any other questions?' }, 'Finish your response with this exact phrase: "Any other questions?". No other words should follow this phrase.'],
  ['startend:quotation', {}, 'Wrap your entire response with double quotation marks.'],
  ['change_case:capital_word_frequency', { capital_relation: 'at least', capital_frequency: 1 }, 'In your response, words with all capital letters should appear at least 1 time.'],
  ['change_case:english_capital', {}, 'Your entire response should be in English, and in all capital letters.'],
  ['change_case:english_lowercase', {}, 'Your entire response should be in English, and in all lowercase letters. No capital letters are allowed.'],
  ['punctuation:no_comma', {}, 'Do not use any commas in your response.'],
];

test('ifeval: one sentence per instruction id, for all 25 ids', () => {
  assert.equal(IFEVAL_INSTRUCTION_IDS.length, 25);
  assert.deepEqual(IFEVAL_TABLE.map((r) => r[0]).sort(), [...IFEVAL_INSTRUCTION_IDS].sort());
  for (const [id, kw, want] of IFEVAL_TABLE) assert.equal(renderIfevalConstraint(id, kw), want, id);
  // Every id and kwargs combination of the real input file renders.
  const ids = new Set<string>();
  for (const line of readFileSync(join(data, 'ifeval', 'input_data.jsonl'), 'utf8').split('\n').filter(Boolean)) {
    const r = JSON.parse(line) as { instruction_id_list: string[]; kwargs: Record<string, unknown>[] };
    r.instruction_id_list.forEach((id, i) => {
      ids.add(id);
      assert.match(renderIfevalConstraint(id, r.kwargs[i]), /\S/);
    });
  }
  assert.deepEqual([...ids].sort(), [...IFEVAL_INSTRUCTION_IDS].sort());
  // Bad kwargs name the field.
  assert.throws(() => renderIfevalConstraint('length_constraints:number_words', { relation: 'about', num_words: 3 }, 'kwargs[0]'), /kwargs\[0\]\.relation: unknown relation "about"/);
  assert.throws(() => renderIfevalConstraint('keywords:existence', {}, 'kwargs[1]'), /kwargs\[1\]\.keywords must be a non-empty list/);
  assert.throws(() => renderIfevalConstraint('nope:nope', {}), /unknown IFEval instruction id "nope:nope"/);
});

test('ifeval: input file (prompt-only), joined responses (training), base override, HF-style null kwargs', () => {
  const input = join(data, 'ifeval', 'input_data.jsonl');
  // Training records need a response: every input record is a counted skip.
  const noResp = readDataset(input, { skipBad: true });
  assert.equal(noResp.examples.length, 0);
  assert.equal(noResp.skipped, 541);
  throwsBad(() => readDataset(input), /input_data\.jsonl:1: field response is missing/);
  // Prompt-only for evaluation.
  const prompts = readDataset(input, { allowNoResponse: true });
  assert.equal(prompts.examples.length, 541);
  const e0 = prompts.examples[0]!;
  assert.deepEqual(e0.messages.map((m) => m.role), ['user']);
  assert.deepEqual(e0.constraints, ['Do not use any commas in your response.', 'Highlight at least 3 sections in your answer with markdown, i.e. *highlighted section*.', 'Answer with at least 300 words.']);
  assert.equal(e0.base, e0.messages[0]!.content.trim());

  // Join the GPT-4 responses by exact prompt text, as the IFEval tool does (key 2785 differs).
  const responses = new Map<string, string>();
  for (const line of readFileSync(join(data, 'ifeval', 'input_response_data_gpt4_20231107_145030.jsonl'), 'utf8').split('\n').filter(Boolean)) {
    const r = JSON.parse(line) as { prompt: string; response: string };
    responses.set(r.prompt, r.response);
  }
  const joined: unknown[] = [];
  for (const line of readFileSync(input, 'utf8').split('\n').filter(Boolean)) {
    const r = JSON.parse(line) as { prompt: string; key: number };
    const response = responses.get(r.prompt);
    if (response !== undefined) joined.push({ ...r, response });
  }
  assert.equal(joined.length, 540);
  const train = readDataset(jsonl('ifeval_joined.jsonl', joined), { domain: 'if' });
  assert.equal(train.examples.length, 540);
  const t0 = train.examples[0]!;
  assert.equal(t0.domain, 'if');
  assert.deepEqual(t0.messages.map((m) => m.role), ['user', 'assistant']);
  assert.match(t0.messages[1]!.content, /^Raymond III was the Count of Tripoli/);
  assert.equal(t0.constraints!.length, 3);

  // A bare instruction can be given (columns map any field to base).
  const withBase = jsonl('ifeval_base.jsonl', [{ prompt: 'Write a poem. Do not use commas.', task: 'Write a poem.', instruction_id_list: ['punctuation:no_comma'], kwargs: [{}], response: 'Roses are red' }]);
  const b = readDataset(withBase, { columns: { base: 'task' } }).examples[0]!;
  assert.equal(b.base, 'Write a poem.');
  assert.equal(composeInstruction(b.base!, b.constraints!), 'Write a poem. Do not use any commas in your response.');
  assert.equal(b.messages[0]!.content, 'Write a poem. Do not use commas.');

  // Hugging Face copy: every kwarg key on every instruction, null where unused; kwargs may be a JSON string.
  const hf = jsonl('ifeval_hf.jsonl', [{
    prompt: 'p', response: 'r', instruction_id_list: ['punctuation:no_comma', 'length_constraints:number_words'],
    kwargs: JSON.stringify([{ num_words: null, relation: null }, { num_words: 50, relation: 'less than', keyword: null }]),
  }]);
  assert.deepEqual(readDataset(hf, { format: 'ifeval' }).examples[0]!.constraints, ['Do not use any commas in your response.', 'Answer with less than 50 words.']);
});

test('ifeval: malformed records name file:line and the field; skipBad counts', () => {
  const recs = [
    { prompt: 'p', response: 'r', instruction_id_list: ['punctuation:no_comma'], kwargs: [{}, {}] },
    { prompt: 'p', response: 'r', instruction_id_list: ['punctuation:no_coma'], kwargs: [{}] },
    { prompt: 'p', response: 'r', instruction_id_list: ['length_constraints:number_words'], kwargs: [{ relation: 'at least' }] },
    { prompt: 'p', response: 'r', instruction_id_list: 'punctuation:no_comma', kwargs: [{}] },
    { prompt: 'p', response: '', instruction_id_list: ['punctuation:no_comma'], kwargs: [{}] },
    { prompt: 'p', response: 'r', instruction_id_list: ['punctuation:no_comma'], kwargs: [{}] },
  ];
  const cases: RegExp[] = [
    /bad_ifeval0\.jsonl:1: field kwargs has 2 entries for 1 instruction ids/,
    /bad_ifeval1\.jsonl:1: field instruction_id_list\[0\]: unknown IFEval instruction id "punctuation:no_coma"/,
    /bad_ifeval2\.jsonl:1: field kwargs\[0\]\.num_words must be a non-negative integer/,
    /bad_ifeval3\.jsonl:1: field instruction_id_list must be a list of strings/,
    /bad_ifeval4\.jsonl:1: field response is empty/,
  ];
  cases.forEach((re, i) => throwsBad(() => readDataset(jsonl(`bad_ifeval${i}.jsonl`, [recs[i]])), re));
  const r = readDataset(jsonl('mixed_ifeval.jsonl', recs), { skipBad: true });
  assert.equal(r.examples.length, 1);
  assert.equal(r.skipped, 5);
  assert.match(r.examples[0]!.id, /mixed_ifeval\.jsonl:6$/);
});

// ---------------------------------------------------------------- Crab

test('crab: the seed sample parses; base = seed instruction, constraints = Additional_Instruction texts', () => {
  const path = join(data, 'crab', 'constraint_back_translation_sample.json');
  const r = readDataset(path, { domain: 'if' });
  assert.equal(r.examples.length, 20);
  assert.equal(r.skipped, 0);
  const raw = JSON.parse(readFileSync(path, 'utf8')) as { messages: { content: string }[]; Aug_instruction: { Additional_Instruction: Record<string, string> } }[];
  r.examples.forEach((e, i) => {
    const add = raw[i]!.Aug_instruction.Additional_Instruction;
    assert.equal(e.base, raw[i]!.messages[0]!.content.trim());
    assert.deepEqual(e.constraints, Object.values(add).map((s) => s.trim()));
    assert.equal(e.messages[0]!.content, composeInstruction(e.base!, e.constraints!));
    assert.equal(e.messages[1]!.content, raw[i]!.messages[1]!.content);
  });
  const e1 = r.examples[1]!;
  assert.match(e1.id, /constraint_back_translation_sample\.json#1$/);
  assert.equal(e1.constraints!.length, 15);
  assert.equal(e1.constraints![0], 'Answer with around 280 words.');
  assert.equal(e1.constraints![1], 'Each sentence is to contain no more than 35 words.');
  // Record 5 uses the " Hierarchical_Instructions" key (leading space): its text is kept.
  assert.ok(r.examples[5]!.constraints!.includes('The response should describe the event itself, and then elaborate on its significance and impact.'));
  const total = r.examples.reduce((s, e) => s + e.constraints!.length, 0);
  assert.equal(total, 263);
});

test('crab: inconsistent keys and value shapes are tolerated; records without constraints are bad', () => {
  const msgs = [{ role: 'user', content: 'Describe X.' }, { role: 'assistant', content: 'X is ...' }];
  const recs = [
    {
      messages: msgs,
      aug_instruction: JSON.stringify({
        refined_instruction: 'Describe X in detail.',
        ' Additional_Instructions ': {
          Digit: ' Answer with around 50 words. ',
          ' Hierarchical_Instructions': ['Start with a definition.', '', null],
          Paragraph: { Count: 'Use two paragraphs.', Empty: '' },
          Keyword: 'Answer with around 50 words.', // duplicate text: dropped
          Punctuation: '',
          Tone: null,
        },
      }),
    },
    { messages: msgs, Aug_instruction: { Additional_Instruction: { Digit: '', Word: null } } },
    { messages: msgs, Aug_instruction: { Refined_Instruction: 'x' } },
    { messages: msgs, Aug_instruction: { Additional_Instruction: { Digit: 5 } } },
    { messages: [{ role: 'user', content: 'Describe X.' }], Aug_instruction: { Additional_Instruction: { Digit: 'a' } } },
  ];
  const e = readDataset(jsonl('crab0.jsonl', [recs[0]])).examples[0]!;
  assert.equal(e.base, 'Describe X.');
  assert.deepEqual(e.constraints, ['Answer with around 50 words.', 'Start with a definition.', 'Use two paragraphs.']);
  assert.equal(e.messages[0]!.content, 'Describe X. Answer with around 50 words. Start with a definition. Use two paragraphs.');
  const cases: RegExp[] = [
    /crab1\.jsonl:1: field Aug_instruction\.Additional_Instruction holds no constraint text/,
    /crab2\.jsonl:1: field Aug_instruction\.Additional_Instruction is missing/,
    /crab3\.jsonl:1: field Aug_instruction\.Additional_Instruction\.Digit must be text, a list or a map, got number/,
    /crab4\.jsonl:1: field messages has no assistant turn after the instruction/,
  ];
  cases.forEach((re, i) => throwsBad(() => readDataset(jsonl(`crab${i + 1}.jsonl`, [recs[i + 1]]), { format: 'crab' }), re));
  const r = readDataset(jsonl('crab_mixed.jsonl', recs), { skipBad: true });
  assert.equal(r.examples.length, 1);
  assert.equal(r.skipped, 4);
});

// ---------------------------------------------------------------- FollowBench

test('followbench: constraints are the whole sentences each level inserts; rewrites are not separable', () => {
  assert.equal(insertedSentences('Write a story.\n\nwords: a, b', 'Write a story. Use a formal tone.\n\nwords: a, b'), 'Use a formal tone.');
  assert.equal(insertedSentences('Write a story.', 'Write a story. Use a formal tone. Keep it short.'), 'Use a formal tone. Keep it short.');
  assert.equal(insertedSentences('Write a story.', 'Be brief. Write a story.'), 'Be brief.');
  assert.equal(insertedSentences('Write a story.', 'Write a five-sentence story.'), null); // word insertion
  assert.equal(insertedSentences('Write a story.', 'Compose a story. Be brief.'), null); // rewrite
  assert.equal(insertedSentences('Write a story.', 'Write a story.'), null);
  assert.equal(insertedSentences('List:\n1. milk;', 'List:\n1. milk;\n2. not including any eggs;'), '2. not including any eggs;');
});

test('followbench: every file parses; level chains, responses and prompt-only reading', () => {
  const counts: Record<string, [number, number, number, number]> = {
    // file: [train examples, skipped (no response), prompt-only chains, one per level]
    content: [12, 13, 25, 133],
    example: [40, 0, 40, 200],
    format: [0, 30, 30, 180],
    mixed: [3, 14, 17, 102],
    situation: [8, 14, 22, 132],
    style: [0, 30, 30, 180],
  };
  for (const [name, [nTrain, nSkip, nChains, nLevels]] of Object.entries(counts)) {
    const path = join(data, 'followbench', `${name}_constraints.json`);
    const tr = readDataset(path, { skipBad: true });
    assert.deepEqual([tr.examples.length, tr.skipped], [nTrain, nSkip], name);
    for (const e of tr.examples) assert.equal(e.messages.at(-1)!.role, 'assistant');
    assert.equal(readDataset(path, { allowNoResponse: true }).examples.length, nChains, name);
    assert.equal(readDataset(path, { allowNoResponse: true, followbenchLevels: 'all', format: 'followbench' }).examples.length, nLevels, name);
  }
  throwsBad(() => readDataset(join(data, 'followbench', 'format_constraints.json')), /format_constraints\.json#5: no response for FollowBench example_id 1 level 5: fields answer\/target are empty/);

  // mixed example 1: level 0 + four appended sentences (level 1 rewrites "a story" → "a five-sentence story").
  const mixed = readDataset(join(data, 'followbench', 'mixed_constraints.json'), { allowNoResponse: true, domain: 'if' }).examples[0]!;
  assert.match(mixed.id, /mixed_constraints\.json#5$/);
  assert.equal(mixed.domain, 'if');
  assert.equal(mixed.base, 'Using following words to generate a five-sentence story.\n\nneeded, money, computer, bought, happy');
  assert.deepEqual(mixed.constraints, [
    'You should make sure that the below words appear in output according to the given order.',
    'Each sentence should include, at least, one of these words.',
    'You should also use these words with the exact given tense.',
    'Besides, please use a formal tone.',
  ]);
  assert.deepEqual(mixed.messages.map((m) => m.role), ['user']);

  // Per level: level k carries the separable constraints of its chain up to k.
  const levels = readDataset(join(data, 'followbench', 'mixed_constraints.json'), { allowNoResponse: true, followbenchLevels: 'all' }).examples.slice(0, 6);
  assert.deepEqual(levels.map((e) => e.constraints?.length ?? 0), [0, 0, 1, 2, 3, 4]);
  assert.ok(levels[0]!.messages.length === 2 && levels[0]!.messages[1]!.content.startsWith('In the heart of the city')); // level 0 has a target

  // situation: a chain of only separable steps has base = level 0 and 5 constraints.
  const sit = readDataset(join(data, 'followbench', 'situation_constraints.json'), { allowNoResponse: true }).examples;
  const full = sit.filter((e) => e.constraints?.length === 5);
  assert.equal(full.length, 6);
  // example_constraints: the response is `answer` (its `target` is a format template).
  const ex = readDataset(join(data, 'followbench', 'example_constraints.json')).examples[0]!;
  assert.equal(ex.messages[1]!.content, "{'AI assistant': 'Legal Anywhere.com'}");
});

test('no-response errors say why and what to do with options that exist (FollowBench, IFEval inputs)', () => {
  const msg = (fn: () => unknown): string => {
    try {
      fn();
    } catch (e) {
      assert.ok(e instanceof MixtuneError && !e.message.includes('\n'));
      return e.message;
    }
    assert.fail('no error');
  };
  // No record of format_constraints.json has a response: skipping would leave nothing, so the hint is not --skip-bad.
  const format = msg(() => readDataset(join(data, 'followbench', 'format_constraints.json')));
  assert.match(format, /format_constraints\.json#5: no response for FollowBench example_id 1 level 5: .*\(no record of this file has a response: it is evaluation data and cannot be trained on\)$/);
  assert.doesNotMatch(format, /allow prompt-only|--skip-bad/);
  // content_constraints.json has responses on some levels: the chain's are named and --skip-bad is the option.
  const content = msg(() => readDataset(join(data, 'followbench', 'content_constraints.json')));
  assert.match(content, /content_constraints\.json#5: no response for FollowBench example_id 1 level 5: .*\(no level of this chain has one\) \(use --skip-bad to skip bad records\)$/);
  const mixed = readDataset(join(data, 'followbench', 'mixed_constraints.json'), { skipBad: true });
  assert.ok(mixed.skipReasons.some((r) => /\(only level 0 of this chain has one\)/.test(r)), mixed.skipReasons.join('\n'));
  const ifeval = msg(() => readDataset(join(data, 'ifeval', 'input_data.jsonl')));
  assert.match(ifeval, /input_data\.jsonl:1: field response is missing: .*train on a file with responses/);
  assert.doesNotMatch(ifeval, /allow prompt-only/);
});

test('followbench: level gaps, duplicates and bad fields are bad records', () => {
  const r = (example_id: number | string, level: number | string, instruction: unknown, target = 'ok'): Record<string, unknown> => ({ example_id, level, instruction, target, category: 'c' });
  const path = jsonl('fb.jsonl', [
    r(1, 0, 'Do A.'), r(1, 1, 'Do A. Be brief.'), r(1, 2, 'Do A. Be brief. Use a list.'), // good: 2 constraints
    r(2, 0, 'Do B.'), r(2, 2, 'Do B. X. Y.'), // gap
    r(3, 0, 'Do C.'), r(3, 0, 'Do C again.'), // duplicate level 0 (the second record is bad, the chain stays)
    r(4, 'one', 'Do D.'),
    r(5, 0, 42),
    r(6, 0, ''), r(6, 1, 'Do F.'), r(6, 2, 'Do F. Be kind.'), // empty level 0 = absent: the chain starts at 1
  ]);
  const res = readDataset(path, { skipBad: true });
  assert.deepEqual(res.examples.map((e) => [e.id.split('/').pop(), e.base, e.constraints]), [
    ['fb.jsonl:3', 'Do A.', ['Be brief.', 'Use a list.']],
    ['fb.jsonl:6', undefined, undefined],
    ['fb.jsonl:12', 'Do F.', ['Be kind.']],
  ]);
  assert.equal(res.skipped, 4);
  assert.match(res.skipReasons.join('|'), /fb\.jsonl:5: FollowBench example_id 2: level 1 is missing \(levels 0, 2\)/);
  assert.match(res.skipReasons.join('|'), /fb\.jsonl:7: duplicate level 0 for example_id 3/);
  assert.match(res.skipReasons.join('|'), /fb\.jsonl:8: field level must be a non-negative integer/);
  assert.match(res.skipReasons.join('|'), /fb\.jsonl:9: field instruction must be a string/);
  throwsBad(() => readDataset(path), /fb\.jsonl:5: FollowBench example_id 2: level 1 is missing/);
  // parseRecord-level: a lone FollowBench record in a non-FollowBench file is a bad record.
  const lone = jsonl('fb_lone.jsonl', [{ prompt: 'p', completion: 'c' }, r(1, 0, 'x')]);
  throwsBad(() => readDataset(lone), /fb_lone\.jsonl:2: FollowBench records form level chains/);
});

// ---------------------------------------------------------------- Parquet, detection, config

test('parquet: rows read through the same record parsers (file#row ids, int64 → number)', async () => {
  const p = join(tmp, 'chat.parquet');
  writeFileSync(p, Buffer.from(parquetWriteBuffer({
    columnData: [
      { name: 'question', data: ['What is 2+2?', 'Name a colour.', ''], type: 'STRING' },
      { name: 'answer', data: ['4', 'Blue.', 'x'], type: 'STRING' },
      { name: 'n', data: [1n, 2n, 3n], type: 'INT64' },
    ],
  })));
  throwsBad(() => readDataset(p, { columns: { prompt: 'question', completion: 'answer' } }), /chat\.parquet#2: field prompt is empty/);
  const r = readDataset(p, { columns: { prompt: 'question', completion: 'answer' }, domain: 'math', skipBad: true });
  assert.equal(r.examples.length, 2);
  assert.equal(r.skipped, 1);
  assert.match(r.examples[1]!.id, /chat\.parquet#1$/);
  assert.deepEqual(r.examples[1]!.messages, [{ role: 'user', content: 'Name a colour.' }, { role: 'assistant', content: 'Blue.' }]);
  assert.deepEqual((await readParquetObjects(p))[0], { question: 'What is 2+2?', answer: '4', n: 1 });

  // Nested columns: OpenAI messages (list<struct>) and IFEval lists / kwargs.
  const q = join(tmp, 'nested.parquet');
  writeFileSync(q, Buffer.from(parquetWriteBuffer({
    columnData: [
      { name: 'messages', data: [[{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }]] },
    ],
  })));
  const m = readDataset(q).examples[0]!;
  assert.equal(m.system, 'Be brief.');
  assert.deepEqual(m.messages.map((x) => x.role), ['user', 'assistant']);
  const f = join(tmp, 'ifeval.parquet');
  writeFileSync(f, Buffer.from(parquetWriteBuffer({
    columnData: [
      { name: 'prompt', data: ['Write a haiku without commas.'], type: 'STRING' },
      { name: 'response', data: ['Snow falls'], type: 'STRING' },
      { name: 'instruction_id_list', data: [['punctuation:no_comma', 'length_constraints:number_words']] },
      { name: 'kwargs', data: [[{ num_words: null, relation: null }, { num_words: 10, relation: 'less than' }]], type: 'JSON' },
    ],
  })));
  assert.deepEqual(readDataset(f).examples[0]!.constraints, ['Do not use any commas in your response.', 'Answer with less than 10 words.']);

  const notParquet = join(tmp, 'fake.parquet');
  writeFileSync(notParquet, 'hello');
  throwsBad(() => readDataset(notParquet), /fake\.parquet: not a Parquet file/);
});

test('auto detection picks each source format; the config accepts the new format names', () => {
  const recs: [unknown, (e: Example) => void][] = [
    [{ prompt: 'p', response: 'r', instruction_id_list: ['punctuation:no_comma'], kwargs: [{}] }, (e) => assert.equal(e.constraints!.length, 1)],
    [{ messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'a' }], Aug_instruction: { Additional_Instruction: { Digit: 'Be short.' } } }, (e) => assert.equal(e.messages[0]!.content, 'q Be short.')],
    [{ instruction: 'q', constraints: ['c'], output: 'a' }, (e) => assert.deepEqual(e.constraints, ['c'])],
    [{ prompt: 'p', response: 'r' }, (e) => assert.equal(e.constraints, undefined)],
  ];
  recs.forEach(([rec, check], i) => check(readDataset(jsonl(`auto${i}.jsonl`, [rec])).examples[0]!));
  for (const format of ['ifeval', 'crab', 'followbench']) {
    const cfg = validateTrainConfig({ model: 'm', data: { datasets: [{ path: 'x.jsonl', format }] } }, 'train.yaml', '/tmp');
    assert.equal(cfg.data.datasets[0]!.format, format);
  }
  assert.throws(() => validateTrainConfig({ model: 'm', data: { datasets: [{ path: 'x', format: 'ifevals' }] } }, 'train.yaml'), /datasets\.0\.format/);
});

// ---------------------------------------------------------------- Packing on GSM8K

test('packing: GSM8K train with the Mistral v0.3 chat template packs at >= 95% efficiency into 1024-token rows', (t) => {
  // encodeConversation costs ~4 ms per GSM8K example here (several prefix encodings), ~30 s for
  // all 7473, so by default every 10th example is used; MIXTUNE_FULL_DATA=1 encodes them all.
  const full = process.env.MIXTUNE_FULL_DATA === '1';
  const tok = HfTokenizer.load(join(sharedDir(), 'fixtures', 'mistral-v0.3'));
  const template = ChatTemplate.forTokenizer(tok);
  const r = readDataset(join(data, 'gsm8k', 'train.jsonl'), { columns: { prompt: 'question', completion: 'answer' }, domain: 'math' });
  assert.equal(r.examples.length, 7473);
  const examples = full ? r.examples : r.examples.filter((_, i) => i % 10 === 0);
  const t0 = performance.now();
  const groups: Group[] = examples.map((ex) => {
    const enc = encodeConversation(tok, template, ex.messages.map((m) => ({ ...m })), { where: ex.id });
    return causalGroup(enc.ids, enc.labels, ex.id);
  });
  const encodeMs = performance.now() - t0;
  const { rows, stats } = packGroups(groups, 1024, { overflow: 'error' });
  t.diagnostic(`gsm8k ${examples.length} examples: efficiency ${stats.efficiency.toFixed(4)} (${stats.tokens} tokens in ${stats.rows} rows), encode ${(encodeMs / 1000).toFixed(1)} s`);
  assert.equal(stats.groups, examples.length);
  assert.equal(stats.dropped + stats.truncated, 0);
  assert.ok(stats.efficiency >= 0.95, `efficiency ${stats.efficiency}`);
  assert.ok(rows.every((row) => row.length <= 1024));
  assert.equal(stats.tokens, groups.reduce((s, g) => s + g.tokens.length, 0));
});
