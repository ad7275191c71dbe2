import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Llama2cTokenizer } from '../src/io/llama2c-tokenizer.js';
import { HfTokenizer } from '../src/io/hf-tokenizer.js';
import { ChatTemplate, encodeConversation } from '../src/io/chat.js';
import { composeInstruction, type Example } from '../src/data/readers.js';
import { IGNORE, buildRow, causalGroup, packGroups, type Group, type Row } from '../src/data/pack.js';
import {
  BUILTIN_SYSTEM_PROMPTS, DEFAULT_K_PROBS, assignSystemPrompts, buildGroups, drawK, evalGroups, mergeRowGroups, misoGroup, mixChunks,
  paraInstructions, splitChunks, splitLastTurn, type ExampleEncoder, type RecipeOptions,
} from '../src/data/recipes/index.js';
import { chatEncoder } from '../src/train/setup.js';
import { validateTrainConfig } from '../src/train/config.js';
import { recipeFromConfig } from '../src/train/prepare.js';
import { makeMicroBatch } from '../src/train/batch.js';
import { loadModel } from '../src/io/load.js';
import { nativeKernels } from '../src/tensor/native.js';
import { Rng } from '../src/util/rng.js';
import { MixtuneError } from '../src/util/errors.js';
import { sharedDir } from '../src/util/paths.js';

const F = join(sharedDir(), 'fixtures');
const tok512 = Llama2cTokenizer.load(join(F, 'stories260K', 'tok512.bin'));
const plain = ChatTemplate.forTokenizer(tok512);
const enc512 = chatEncoder(tok512, plain, 'assistant');
let mistralTok: HfTokenizer | undefined;
const mistral = (): HfTokenizer => (mistralTok ??= HfTokenizer.load(join(F, 'mistral-v0.3')));

function multi(id: string, base: string, constraints: string[], output: string, domain = 'chat'): Example {
  return { id, domain, base, constraints, messages: [{ role: 'user', content: composeInstruction(base, constraints) }, { role: 'assistant', content: output }] };
}
function plainEx(id: string, user: string, output: string, domain = 'chat', system?: string): Example {
  return { id, domain, ...(system !== undefined ? { system } : {}), messages: [{ role: 'user', content: user }, { role: 'assistant', content: output }] };
}

const EX = multi('ex#0', 'Write about Lily and a red ball.', ['Use short words.', 'End with a happy line.'], 'Lily saw a red ball. She was happy.');

/** Independent expectation: encode each instruction text, split at the assistant header. */
function expectedPara(encode: ExampleEncoder, ex: Example, texts: string[]): { inputs: number[][]; output: number[]; labels: number[]; start: number } {
  const inputs: number[][] = [];
  let output: number[] = [];
  let labels: number[] = [];
  let start = 0;
  for (const t of texts) {
    const e = encode({ ...ex, messages: [{ role: 'user', content: t }, ex.messages[1]!] });
    const s = e.spans!.at(-1)!;
    inputs.push(e.ids.slice(0, s.header));
    output = e.ids.slice(s.header, s.end);
    labels = e.labels.slice(s.header, s.end);
    start = s.start - s.header;
  }
  return { inputs, output, labels, start };
}

test('miso-para: 2 constraints -> 4 inputs (full, single x2, bare) with exact parts, positions and targets', () => {
  const texts = paraInstructions(EX, {});
  assert.deepEqual(texts, [
    'Write about Lily and a red ball. Use short words. End with a happy line.',
    'Write about Lily and a red ball. Use short words.',
    'Write about Lily and a red ball. End with a happy line.',
    'Write about Lily and a red ball.',
  ]);
  const r = buildGroups({ name: 'miso-para' }, [EX], { encode: enc512, seed: 1 });
  assert.equal(r.groups.length, 1);
  const g = r.groups[0]!;
  const x = expectedPara(enc512, EX, texts);
  assert.equal(g.nInputs, 4);
  assert.equal(g.weighting, 'uniform');
  assert.deepEqual(g.tokens, [...x.inputs.flat(), ...x.output]);
  assert.deepEqual(g.parts, [...x.inputs.flatMap((inp, i) => inp.map(() => i)), ...x.output.map(() => -1)]);
  const maxIn = Math.max(...x.inputs.map((i) => i.length));
  assert.equal(maxIn, x.inputs[0]!.length);
  assert.deepEqual(g.positions, [...x.inputs.flatMap((inp) => inp.map((_, t) => t)), ...x.output.map((_, j) => maxIn + j)]);
  const expTargets = [...x.inputs.flat().map(() => IGNORE), ...x.output.map((_, j) => (j + 1 < x.output.length ? x.labels[j + 1]! : IGNORE))];
  assert.deepEqual(g.targets, expTargets);
  // The output part starts with the assistant header (no loss); the first response token is
  // predicted by the header's last token, an output-part query that mixes every input.
  const outStart = g.tokens.length - x.output.length;
  assert.equal(tok512.decode(x.output.slice(0, x.start)), '\n\n### Assistant:\n');
  assert.ok(x.start >= 1);
  assert.equal(g.targets[outStart + x.start - 1], x.output[x.start]);
  assert.equal(g.parts![outStart + x.start - 1], -1);
  assert.equal(tok512.decode(g.targets.filter((t) => t !== IGNORE)), 'Lily saw a red ball. She was happy.');
  assert.equal(g.targets.at(-1), IGNORE);
  // Every input is a complete prompt rendering starting with BOS.
  for (const inp of x.inputs) assert.equal(inp[0], tok512.bosId);
  assert.deepEqual(r.info.inputs_per_example, { 4: 1 });
});

test('miso-para options: includeFull, includeBare, maxInputs, weighting; dedupe; no constraints -> SFT', () => {
  const three = multi('ex#1', 'Write a poem.', ['Rhyme.', 'Be short.', 'Mention a cat.'], 'A cat sat.');
  assert.deepEqual(paraInstructions(three, { includeFull: false }), ['Write a poem. Rhyme.', 'Write a poem. Be short.', 'Write a poem. Mention a cat.', 'Write a poem.']);
  assert.deepEqual(paraInstructions(three, { includeBare: false }), ['Write a poem. Rhyme. Be short. Mention a cat.', 'Write a poem. Rhyme.', 'Write a poem. Be short.', 'Write a poem. Mention a cat.']);
  assert.deepEqual(paraInstructions(three, { maxInputs: 3 }), ['Write a poem. Rhyme. Be short. Mention a cat.', 'Write a poem. Rhyme.', 'Write a poem.']);
  assert.deepEqual(paraInstructions(three, { maxInputs: 2 }), ['Write a poem. Rhyme. Be short. Mention a cat.', 'Write a poem.']);
  assert.deepEqual(paraInstructions(three, { maxInputs: 2, includeFull: false, includeBare: false }), ['Write a poem. Rhyme.', 'Write a poem. Be short.']);
  // One constraint: the single-constraint input equals the full one and is kept once.
  const one = multi('ex#2', 'Write a poem.', ['Rhyme.'], 'A cat sat.');
  assert.deepEqual(paraInstructions(one, {}), ['Write a poem. Rhyme.', 'Write a poem.']);
  const r = buildGroups({ name: 'miso-para', maxInputs: 3, weighting: 'fid' }, [three, one], { encode: enc512, seed: 1 });
  assert.deepEqual(r.groups.map((g) => [g.nInputs, g.weighting]), [[3, 'fid'], [2, 'fid']]);
  // Without constraints (or with n = 1) the example is an ordinary SFT group.
  const noC = plainEx('ex#3', 'Hi there.', 'Hello!');
  const sft = buildGroups({ name: 'sft' }, [noC, one], { encode: enc512, seed: 1 });
  const r2 = buildGroups({ name: 'miso-para', includeFull: false, includeBare: false }, [noC, one], { encode: enc512, seed: 1 });
  assert.deepEqual(r2.groups, sft.groups);
  assert.equal(r2.info.sft_examples, 2);
});

test('miso-para: n = 1 built by the MISO code equals the SFT group exactly', () => {
  const e = enc512(EX);
  const s = splitLastTurn(e, EX.id, 'test');
  assert.deepEqual(misoGroup([s.prompt], s.output, s.outputLabels, { positions: 'para', source: EX.id }), causalGroup(e.ids, e.labels, EX.id));
  assert.deepEqual(misoGroup([s.prompt], s.output, s.outputLabels, { positions: 'succ', source: EX.id }), causalGroup(e.ids, e.labels, EX.id));
});

test('miso-augment-only: the same augmented inputs as separate SFT groups with the output labels', () => {
  const texts = paraInstructions(EX, {});
  const x = expectedPara(enc512, EX, texts);
  const r = buildGroups({ name: 'miso-augment-only' }, [EX], { encode: enc512, seed: 1 });
  assert.equal(r.groups.length, 4);
  r.groups.forEach((g, i) => {
    assert.equal(g.nInputs, 1);
    assert.equal(g.parts, undefined);
    const e = enc512({ ...EX, messages: [{ role: 'user', content: texts[i]! }, EX.messages[1]!] });
    assert.deepEqual(g, causalGroup(e.ids, e.labels, `${EX.id}[${i}]`));
    assert.deepEqual(g.tokens, [...x.inputs[i]!, ...x.output]);
  });
  // The trained tokens are the same as MISO's, once per input.
  const m = buildGroups({ name: 'miso-para' }, [EX], { encode: enc512, seed: 1 }).groups[0]!;
  const trained = (g: Group): number[] => g.targets.filter((t) => t !== IGNORE);
  for (const g of r.groups) assert.deepEqual(trained(g), trained(m));
});

test('miso-para with the Mistral v0.3 template: the output part starts at [/INST], identical for every input', () => {
  const tok = mistral();
  const enc = chatEncoder(tok, ChatTemplate.forTokenizer(tok), 'assistant');
  const sp = (ids: number[]): string => Buffer.from(tok.decodeBytes(ids.slice(1), { prev: ids[0]!, special: true })).toString();
  const r = buildGroups({ name: 'miso-para' }, [EX], { encode: enc, seed: 1 });
  const g = r.groups[0]!;
  assert.equal(g.nInputs, 4);
  const out = g.tokens.filter((_, t) => g.parts![t] === -1);
  const outTargets = g.targets.filter((_, t) => g.parts![t] === -1);
  assert.equal(tok.decodeBytes([out[0]!], { special: true }).length > 0, true);
  assert.equal(Buffer.from(tok.decodeBytes([out[0]!], { special: true })).toString(), '[/INST]');
  // Output position 0 ([/INST]) predicts the first response token.
  assert.equal(outTargets[0], out[1]);
  assert.equal(tok.decode(outTargets.filter((t) => t !== IGNORE)), 'Lily saw a red ball. She was happy.');
  // Each input is a full prompt "<s>[INST] ...", without the [/INST] that moved to the output.
  for (let i = 0; i < 4; i++) {
    const inp = g.tokens.filter((_, t) => g.parts![t] === i);
    assert.equal(inp[0], tok.bosId);
    assert.match(sp(inp), /^\[INST\] Write about Lily and a red ball\./);
  }
  const full = encodeConversation(tok, ChatTemplate.forTokenizer(tok), [{ role: 'user', content: EX.messages[0]!.content }, EX.messages[1]!]);
  const s = full.assistantSpans[0]!;
  assert.equal(s.header, s.start); // Mistral's generation prompt is empty
  assert.deepEqual(out, full.ids.slice(s.start - 1, s.end));
  // Multi-turn: earlier turns are part of every input; MISO varies the last user turn.
  const mt: Example = {
    ...EX, id: 'mt', messages: [{ role: 'user', content: 'Hi.' }, { role: 'assistant', content: 'Hello!' }, ...EX.messages],
  };
  const gm = buildGroups({ name: 'miso-para' }, [mt], { encode: enc, seed: 1 }).groups[0]!;
  for (let i = 0; i < 4; i++) assert.match(sp(gm.tokens.filter((_, t) => gm.parts![t] === i)), /^\[INST\] Hi\.\[\/INST\] Hello!<\/s>\[INST\] Write about Lily/);
  assert.equal(tok.decode(gm.targets.filter((t) => t !== IGNORE)), 'Lily saw a red ball. She was happy.');
});

test('miso-para: an encoder without assistant spans is a clear error', () => {
  const bare: ExampleEncoder = (ex) => {
    const e = enc512(ex);
    return { ids: e.ids, labels: e.labels };
  };
  assert.throws(() => buildGroups({ name: 'miso-para' }, [EX], { encode: bare, seed: 1 }), (e: unknown) => e instanceof MixtuneError && /ex#0: recipe miso-para needs the assistant spans/.test(e.message));
});

test('miso-succ: k distribution, near-equal chunks, unsplit positions, k = 1 is SFT', () => {
  const rng = new Rng(7);
  const counts = [0, 0, 0, 0];
  const N = 20000;
  for (let i = 0; i < N; i++) counts[drawK(rng, DEFAULT_K_PROBS) - 1]!++;
  counts.forEach((c, i) => assert.ok(Math.abs(c / N - DEFAULT_K_PROBS[i]!) < 0.015, `P(k=${i + 1}) = ${c / N}`));
  assert.deepEqual(splitChunks([1, 2, 3, 4, 5, 6, 7], 3), [[1, 2], [3, 4], [5, 6, 7]]);
  const exs = Array.from({ length: 40 }, (_, i) => plainEx(`s#${i}`, `Tell me a story about a dog number ${i} who likes to run.`, `The dog ${i} ran far.`));
  const r = buildGroups({ name: 'miso-succ', kProbs: [0, 0, 1] }, exs, { encode: enc512, seed: 3 });
  for (const [i, g] of r.groups.entries()) {
    const e = enc512(exs[i]!);
    const s = e.spans!.at(-1)!;
    assert.equal(g.nInputs, 3);
    assert.deepEqual(g.tokens, e.ids.slice(0, s.end));
    assert.deepEqual(g.positions, g.tokens.map((_, t) => t)); // exactly the unsplit positions
    const sizes = [0, 1, 2].map((p) => g.parts!.filter((x) => x === p).length);
    assert.equal(sizes.reduce((a, b) => a + b, 0), s.header);
    assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, `chunk sizes ${sizes}`);
    assert.deepEqual(g.parts!.slice(s.header), new Array(s.end - s.header).fill(-1));
    assert.equal(g.targets.filter((t) => t !== IGNORE).length, s.end - s.start);
  }
  assert.deepEqual(r.info.chunks_per_example, { 3: 40 });
  // k = 1 is plain SFT.
  const one = buildGroups({ name: 'miso-succ', kProbs: [1] }, exs, { encode: enc512, seed: 3 });
  assert.deepEqual(one.groups, buildGroups({ name: 'sft' }, exs, { encode: enc512, seed: 3 }).groups);
  // The default mixture: about 55% of the examples unsplit.
  const many = Array.from({ length: 400 }, (_, i) => exs[i % 40]!);
  const d = buildGroups({ name: 'miso-succ' }, many, { encode: enc512, seed: 5 }).info.chunks_per_example as Record<string, number>;
  assert.ok(Math.abs(d['1']! / 400 - 0.55) < 0.08, JSON.stringify(d));
});

test('model check: a MISO group of n identical inputs has exactly the SFT loss; packing does not change losses', () => {
  const { model } = loadModel(join(F, 'stories260K', 'stories260K.bin'), nativeKernels());
  const e = enc512(EX);
  const s = splitLastTurn(e, 'x', 'test');
  const lossOf = (rows: Row[]): { sum: number; tokens: number } => {
    const mb = makeMicroBatch(rows, 0);
    const r = model.forward(mb.inputs, mb.targets, mb.batch, { positions: mb.positions, ...(mb.layout ? { layout: mb.layout } : {}), grad: false });
    return { sum: r.lossSum, tokens: r.tokens };
  };
  const sft = lossOf([buildRow([causalGroup(e.ids, e.labels, 'x')])]);
  for (const weighting of ['uniform', 'fid'] as const) {
    // n copies of one input: every A_i is the plain causal attention over [input; output], so the
    // mixed output equals it whatever the weights (and the output starts at position len(input)).
    const g = misoGroup([s.prompt, s.prompt, s.prompt], s.output, s.outputLabels, { positions: 'para', weighting, source: 'x' });
    const l = lossOf([buildRow([g])]);
    assert.equal(l.tokens, sft.tokens);
    assert.ok(Math.abs(l.sum - sft.sum) <= 1e-4 * Math.abs(sft.sum), `${weighting}: ${l.sum} vs ${sft.sum}`);
  }
  // Distinct inputs give a different loss; packed with another group, the same loss as alone.
  const para = buildGroups({ name: 'miso-para' }, [EX], { encode: enc512, seed: 1 }).groups[0]!;
  const other = causalGroup(enc512(plainEx('o', 'Hi.', 'Hello there!')).ids, enc512(plainEx('o', 'Hi.', 'Hello there!')).labels, 'o');
  const alone = lossOf([buildRow([para])]);
  assert.ok(Math.abs(alone.sum - sft.sum) > 1e-3);
  const otherAlone = lossOf([buildRow([other])]);
  const packed = lossOf([buildRow([other, para])]);
  assert.ok(Math.abs(packed.sum - (alone.sum + otherAlone.sum)) <= 1e-4 * packed.sum, `${packed.sum} vs ${alone.sum + otherAlone.sum}`);
});

function domainExamples(sizes: Record<string, number>): Example[] {
  const out: Example[] = [];
  for (const [d, n] of Object.entries(sizes)) for (let i = 0; i < n; i++) out.push(plainEx(`${d}#${i}`, `${d} question ${i}?`, `${d} answer ${i}.`, d));
  return out;
}

test('moi balanced: one instruction per domain per chunk; small domains cycled, reshuffled, never repeated within a pass', () => {
  const exs = domainExamples({ chat: 12, code: 5, math: 3, tool: 7 });
  const chunks = mixChunks(exs, 'balanced', 4, new Rng(11));
  assert.equal(chunks.length, 12);
  for (const c of chunks) assert.deepEqual(c.map((i) => exs[i]!.domain).sort(), ['chat', 'code', 'math', 'tool']);
  // the order inside a chunk is shuffled: every domain opens some chunk
  assert.equal(new Set(chunks.map((c) => exs[c[0]!]!.domain)).size, 4);
  const byDomain = (d: string): number[] => chunks.map((c) => c.find((i) => exs[i]!.domain === d)!);
  assert.deepEqual([...byDomain('chat')].sort((a, b) => a - b), exs.map((e, i) => [e, i] as const).filter(([e]) => e.domain === 'chat').map(([, i]) => i));
  for (const [d, n] of [['code', 5], ['math', 3], ['tool', 7]] as const) {
    const seq = byDomain(d);
    const passes: number[][] = [];
    for (let p = 0; p < seq.length; p += n) passes.push(seq.slice(p, p + n));
    for (const pass of passes) assert.equal(new Set(pass).size, pass.length, `${d}: repeated within a pass ${pass}`);
    for (const pass of passes.slice(0, -1)) assert.equal(pass.length, n);
    if (d === 'math') assert.ok(passes.some((p, i) => i > 0 && p.join() !== passes[0]!.join()), 'math passes are reshuffled');
  }
  // nMix = 2 x domains: two per domain per chunk.
  const c8 = mixChunks(exs, 'balanced', 8, new Rng(11));
  for (const c of c8) for (const d of ['chat', 'code', 'math', 'tool']) assert.equal(c.filter((i) => exs[i]!.domain === d).length, 2);
});

test('moi proportional and concat', () => {
  const exs = domainExamples({ chat: 30, math: 10 });
  const prop = mixChunks(exs, 'proportional', 4, new Rng(2));
  const flat = prop.flat();
  assert.equal(flat.length, 40);
  assert.deepEqual([...flat].sort((a, b) => a - b), exs.map((_, i) => i)); // each example once
  assert.notDeepEqual(flat, exs.map((_, i) => i)); // shuffled
  // A dataset weight of 3 on math: math gets half of the slots (10·3 vs 30·1), cycled without repeats per pass.
  const w = exs.map((e) => (e.domain === 'math' ? 3 : 1));
  const pw = mixChunks(exs, 'proportional', 4, new Rng(2), w).flat();
  assert.equal(pw.filter((i) => exs[i]!.domain === 'math').length, 20);
  assert.equal(new Set(pw.filter((i) => exs[i]!.domain === 'chat')).size, 20);
  const cat = mixChunks(exs, 'concat', 3, new Rng(2));
  assert.deepEqual(cat.flat(), exs.map((_, i) => i));
  assert.deepEqual(cat.map((c) => c.length), [...new Array(13).fill(3), 1]);
});

test('moi system prompts: built-in pools, overrides, own prompts kept, domains without a pool', () => {
  for (const d of ['chat', 'code', 'math', 'tool']) {
    assert.ok(BUILTIN_SYSTEM_PROMPTS[d]!.length >= 5, d);
    assert.equal(new Set(BUILTIN_SYSTEM_PROMPTS[d]).size, BUILTIN_SYSTEM_PROMPTS[d]!.length);
  }
  const exs = [...domainExamples({ code: 30, math: 3, stories: 2 }), plainEx('own', 'q', 'a', 'code', 'Mine.')];
  const r = assignSystemPrompts(exs, new Rng(1), { math: ['M1', 'M2'] });
  const code = r.examples.filter((e) => e.domain === 'code' && e.id !== 'own').map((e) => e.system!);
  assert.ok(code.every((s) => BUILTIN_SYSTEM_PROMPTS.code!.includes(s)));
  assert.ok(new Set(code).size >= 3, 'prompts are drawn from the pool');
  assert.ok(r.examples.filter((e) => e.domain === 'math').every((e) => e.system === 'M1' || e.system === 'M2'));
  assert.ok(r.examples.filter((e) => e.domain === 'stories').every((e) => e.system === undefined));
  assert.equal(r.examples.find((e) => e.id === 'own')!.system, 'Mine.');
  assert.deepEqual(r.withoutPool, ['stories']);
  assert.equal(exs[0]!.system, undefined, 'inputs are not mutated');
  // Eval: the default prompt instead of a domain prompt.
  const ev = evalGroups({ name: 'moi' }, [plainEx('e', 'q', 'a', 'code')], { encode: enc512, seed: 1 }).groups[0]!;
  assert.match(tok512.decode(ev.tokens), /### System:\nYou are a helpful assistant\./);
});

test('moi masks: chunk (one group per chunk, positions through the chunk), isolated, full', () => {
  const exs = domainExamples({ chat: 4, code: 4, math: 4 });
  const ctx = { encode: enc512, seed: 9 };
  const chunk = buildGroups({ name: 'moi', nMix: 3 }, exs, ctx);
  assert.equal(chunk.groups.length, 4);
  for (const g of chunk.groups) {
    assert.equal(g.nInputs, 1);
    assert.deepEqual(g.positions, g.tokens.map((_, t) => t));
    const bos = g.tokens.map((t, i) => (t === tok512.bosId ? i : -1)).filter((i) => i >= 0);
    assert.equal(bos.length, 3, 'three instructions per chunk');
    assert.ok(/### System:\n/.test(tok512.decode(g.tokens)));
    for (const b of bos) if (b > 0) assert.equal(g.targets[b - 1], IGNORE);
    // Each instruction's labels come from its own rendering: the trained text is the three answers.
    const trained = tok512.decode(g.targets.filter((t) => t !== IGNORE && t !== tok512.eosId));
    assert.equal((trained.match(/answer \d+\./g) ?? []).length, 3);
  }
  assert.deepEqual(chunk.info.instructions_per_domain, { chat: 4, code: 4, math: 4 });
  const iso = buildGroups({ name: 'moi', nMix: 3, mask: 'isolated' }, exs, ctx);
  assert.equal(iso.groups.length, 12);
  assert.deepEqual(iso.groups.flatMap((g) => g.tokens), chunk.groups.flatMap((g) => g.tokens)); // same instructions, same order
  const full = buildGroups({ name: 'moi', nMix: 3, mask: 'full' }, exs, ctx);
  assert.equal(full.mergeRows, true);
  const { rows } = packGroups(full.groups, 4096);
  assert.ok(rows[0]!.groups.length >= 2);
  const merged = mergeRowGroups(rows[0]!);
  assert.deepEqual(merged.groups, [{ nInputs: 1, weighting: 'uniform' }]);
  assert.deepEqual([...merged.positions], [...merged.tokens].map((_, t) => t));
  assert.deepEqual([...merged.group], new Array(merged.length).fill(0));
  assert.deepEqual([...merged.targets], [...rows[0]!.targets]);
});

test('recipe config: snake_case YAML -> options; unknown keys name their path', () => {
  const base = { model: 'm', data: { datasets: [{ path: 'x.jsonl' }] } };
  const cfg = (recipe: unknown): RecipeOptions => recipeFromConfig(validateTrainConfig({ ...base, recipe }, 'c.yaml').recipe);
  assert.deepEqual(recipeFromConfig(validateTrainConfig(base, 'c.yaml').recipe), { name: 'sft' });
  assert.deepEqual(cfg({ name: 'moi', mix: 'proportional', n_mix: 4, mask: 'isolated', system_prompts: { math: ['A'] } }), {
    name: 'moi', mix: 'proportional', nMix: 4, mask: 'isolated', evalSystem: 'You are a helpful assistant.', systemPrompts: { math: ['A'] },
  });
  assert.deepEqual(cfg({ name: 'miso-para', include_full: false, max_inputs: 3, weighting: 'fid' }), { name: 'miso-para', includeFull: false, includeBare: true, maxInputs: 3, weighting: 'fid' });
  assert.deepEqual(cfg({ name: 'miso-augment-only' }), { name: 'miso-augment-only', includeFull: true, includeBare: true, maxInputs: 6 });
  assert.deepEqual(cfg({ name: 'miso-succ', k_probs: [0.5, 0.5] }), { name: 'miso-succ', kProbs: [0.5, 0.5], weighting: 'uniform' });
  const bad = (recipe: unknown, re: RegExp): void => assert.throws(() => cfg(recipe), (e: unknown) => e instanceof MixtuneError && re.test(e.message), JSON.stringify(recipe));
  bad({ name: 'moi', n_mixx: 3 }, /c\.yaml: unknown key recipe\.n_mixx/);
  bad({ name: 'miso-augment-only', weighting: 'fid' }, /unknown key recipe\.weighting/);
  bad({ name: 'nope' }, /recipe\.name/);
  bad({ name: 'miso-para', max_inputs: 1 }, /recipe\.max_inputs/);
  bad({ name: 'miso-succ', k_probs: [0, 0] }, /recipe\.k_probs/);
  bad({ name: 'moi', mix: 'random' }, /recipe\.mix/);
});
