// Synthetic multi-constraint instruction data for the demo and the MISO study: simple
// TinyStories-like tasks ("Write a short story about a cat.") with 1-4 IFEval-style verifiable
// constraints. Every constraint is stored structured (IFEval instruction_id_list + kwargs, so the
// IFEval checker verifies it) AND rendered as one short sentence of the instruction. Responses are
// built programmatically to satisfy every constraint (template story sentences, then
// transformations in a fixed valid order) and each example is verified with the checker in strict
// mode before it is kept; a failing draw is regenerated, and an example that keeps failing is
// dropped and counted.
//
// Splits: a constraint combination (the sorted set of instruction ids) belongs to the test split
// when its hash says so (about one in four pairs and triples) or when it has 4 constraints; the
// train split draws 1-3 constraints from the other combinations. The assignment depends only on
// the combination, so any train file and any test file are disjoint in combinations whatever
// their seeds and sizes. Everything is deterministic per seed.
import { composeInstruction } from '../data/readers.js';
import { evaluate, type IfevalInput } from '../eval/ifeval/score.js';
import type { CheckContext, Kwargs } from '../eval/ifeval/checks.js';
import { defaultIfevalNlp } from '../eval/ifeval/run.js';
import { Rng } from '../util/rng.js';
import { MixtuneError } from '../util/errors.js';

/** The constraint types the generator draws from (IFEval instruction ids). */
export const SYNTH_CONSTRAINT_IDS = [
  'change_case:english_lowercase',
  'change_case:english_capital',
  'keywords:existence',
  'keywords:frequency',
  'keywords:forbidden_words',
  'startend:end_checker',
  'startend:quotation',
  'length_constraints:number_words',
  'detectable_content:postscript',
  'detectable_format:title',
  'punctuation:no_comma',
  'detectable_format:number_bullet_lists',
] as const;
export type SynthConstraintId = (typeof SYNTH_CONSTRAINT_IDS)[number];

/** Pairs that cannot (or, for simplicity, do not) appear together. */
const CONFLICTS: ReadonlyArray<[SynthConstraintId, SynthConstraintId]> = [
  ['change_case:english_lowercase', 'change_case:english_capital'],
  ['startend:end_checker', 'detectable_content:postscript'],
];

export type Split = 'train' | 'test';

export interface SynthRecord {
  id: string;
  split: Split;
  /** The bare task. */
  instruction: string;
  /** One sentence per constraint, in instruction_id_list order. */
  constraints: string[];
  output: string;
  instruction_id_list: string[];
  kwargs: Kwargs[];
  /** The full instruction: instruction + all constraint sentences. */
  prompt: string;
}

export interface SynthOptions {
  n: number;
  seed: number;
  split?: Split;
  /** Largest number of constraints per prompt (train default 3, test default 4). */
  maxConstraints?: number;
  /** Checker context (default: the IFEval default NLP with the bundled langdetect profiles). */
  nlp?: CheckContext;
}

export interface SynthResult {
  records: SynthRecord[];
  /** Examples that failed verification on every attempt (not written). */
  dropped: number;
  /** Draws that failed verification and were regenerated. */
  retries: number;
}

// ---- vocabulary (simple words the TinyStories model knows) ------------------------------------

const ANIMALS = ['cat', 'dog', 'bird', 'fish', 'frog', 'bear', 'bunny', 'duck', 'mouse', 'horse', 'pig', 'lion'];
const NAMES = ['Tom', 'Lily', 'Ben', 'Mia', 'Sam', 'Anna', 'Max', 'Sue', 'Tim', 'Lucy'];
const ADJS = ['happy', 'little', 'big', 'kind', 'sad', 'brave', 'funny', 'shy'];
const PLACES = ['park', 'garden', 'forest', 'house', 'pond', 'farm'];
/** Keywords to include (never forbidden, never in the story templates). */
const KEYWORDS = ['ball', 'tree', 'cake', 'rain', 'box', 'hat', 'moon', 'flower', 'boat', 'kite', 'apple', 'star'];
/** Words the story templates use, so forbidding one matters. */
const FORBIDDEN = ['very', 'play', 'fun', 'friend', 'day', 'smiled', 'good', 'saw', 'went', 'loved'];
const END_PHRASES = ['The end.', 'That is all.', 'Is there anything else I can help with?', 'And that is the story.', 'Goodbye!'];
const PS_TEXTS = ['I love {animal}s.', '{Name} is my friend too.', 'Thank you for reading.', 'Have a nice day.', 'Be kind to {animal}s.'];
// PS texts may use forbidden words; the verification step rejects such draws and retries.

const BASES = [
  'Write a short story about a {animal}.',
  'Tell me about a {adj} {animal}.',
  'Write a story about {Name} and a {animal}.',
  'Tell a story about a {animal} in the {place}.',
  'Write about a day at the {place} with a {animal}.',
  'Tell me a story about {Name}.',
  'Write a story for a child about a {adj} {animal}.',
];

const OPENINGS = [
  'Once upon a time, there was a {adj} {animal} named {Name}.',
  'One day, a {adj} {animal} named {Name} went to the {place}.',
  '{Name} was a {adj} {animal} who lived near the {place}.',
];
const MIDDLES = [
  '{Name} liked to play with a friend.',
  'Every day, {Name} went to the {place}.',
  'The sun was warm and the sky was blue.',
  '{Name} saw a small bug on a leaf.',
  'It was a very good day.',
  '{Name} loved to run and jump.',
  'A little girl smiled at {Name}.',
  'They had a lot of fun together.',
  '{Name} found a new friend in the {place}.',
  'Then, {Name} was very hungry.',
  'Mom gave {Name} some food.',
  '{Name} wanted to help the other animals.',
  'The wind was cold, but {Name} was not scared.',
  'They sang a song and danced.',
  '{Name} went home to sleep.',
  'The {animal} was happy to see the {place}.',
];
const CLOSINGS = [
  'From that day on, {Name} was very happy.',
  'At the end of the day, {Name} went to sleep.',
  '{Name} and the friend played all day.',
  'Everyone smiled, and {Name} felt good.',
];
const KEYWORD_SENTENCES = [
  '{Name} found a {kw} by the {place}.',
  'There was a big {kw} near the {animal}.',
  'The {kw} made {Name} laugh.',
  '{Name} looked at the {kw} for a long time.',
];
const TITLES = ['The {Adj} {Animal}', '{Name} and the {Kw}', 'A Story About {Name}', '{Name} the {Animal}', 'The {Animal} at the {Place}'];

// ---- helpers ------------------------------------------------------------------------------------

function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[rng.int(xs.length)]!;
}
const cap = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);

interface Slots { animal: string; Name: string; adj: string; place: string; kw: string }

function fill(t: string, s: Slots): string {
  return t
    .replace(/\{animal\}/g, s.animal).replace(/\{Animal\}/g, cap(s.animal))
    .replace(/\{Name\}/g, s.Name).replace(/\{adj\}/g, s.adj).replace(/\{Adj\}/g, cap(s.adj))
    .replace(/\{place\}/g, s.place).replace(/\{Place\}/g, cap(s.place))
    .replace(/\{kw\}/g, s.kw).replace(/\{Kw\}/g, cap(s.kw));
}

function hasWord(text: string, word: string): boolean {
  return new RegExp(`\\b${word}\\b`, 'i').test(text);
}

function countWordsLike(text: string): number {
  return text.match(/\w+/g)?.length ?? 0;
}

/** FNV-1a of a string (stable split assignment). */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** The combination key: sorted ids joined by '+'. */
export function comboKey(ids: readonly string[]): string {
  return [...ids].sort().join('+');
}

/** Which split a constraint combination belongs to (independent of seed and size of the run). */
export function splitOfCombo(ids: readonly string[]): Split {
  if (ids.length <= 1) return 'train';
  if (ids.length >= 4) return 'test';
  return hash32(comboKey(ids)) % 4 === 0 ? 'test' : 'train';
}

function conflicts(a: string, b: string): boolean {
  return CONFLICTS.some(([x, y]) => (x === a && y === b) || (x === b && y === a));
}

/** Draws a set of k compatible constraint ids that belongs to `split`. */
function drawCombo(rng: Rng, k: number, split: Split): SynthConstraintId[] {
  for (let attempt = 0; attempt < 1000; attempt++) {
    const pool = rng.shuffle([...SYNTH_CONSTRAINT_IDS]);
    const out: SynthConstraintId[] = [];
    for (const id of pool) {
      if (out.length === k) break;
      if (out.some((o) => conflicts(o, id))) continue;
      out.push(id);
    }
    if (out.length === k && splitOfCombo(out) === split) return out;
  }
  throw new MixtuneError(`synth constraints: cannot draw ${k} constraints for the ${split} split`);
}

// ---- one example --------------------------------------------------------------------------------

interface Built { base: string; ids: string[]; kwargs: Kwargs[]; sentences: string[]; output: string }

/** Builds one example with the given constraint ids (may fail verification; the caller checks). */
function buildExample(rng: Rng, ids: readonly SynthConstraintId[]): Built {
  const has = (id: SynthConstraintId): boolean => ids.includes(id);
  const slots: Slots = { animal: pick(rng, ANIMALS), Name: pick(rng, NAMES), adj: pick(rng, ADJS), place: pick(rng, PLACES), kw: pick(rng, KEYWORDS) };
  const base = fill(pick(rng, BASES), slots);
  const forbidden = has('keywords:forbidden_words') ? pick(rng, FORBIDDEN) : null;
  const freqKw = has('keywords:frequency') ? pick(rng, KEYWORDS.filter((k) => k !== slots.kw)) : null;
  const freqN = freqKw ? 2 + rng.int(2) : 0;
  const allowed = (s: string): boolean => forbidden === null || !hasWord(s, forbidden);
  const sentencePool = (ts: readonly string[], sl: Slots = slots): string[] => ts.map((t) => fill(t, sl)).filter(allowed);

  // body length: short for "less than N words", long for "at least N words"
  const wordsRel = has('length_constraints:number_words') ? (rng.int(2) === 0 ? 'less than' : 'at least') : null;
  const nMiddle = wordsRel === 'less than' ? rng.int(2) : wordsRel === 'at least' ? 4 + rng.int(3) : 1 + rng.int(3);
  const body: string[] = [];
  body.push(pick(rng, sentencePool(OPENINGS)));
  const middles = rng.shuffle(sentencePool(MIDDLES));
  const nBullets = has('detectable_format:number_bullet_lists') ? 2 + rng.int(3) : 0;
  body.push(...middles.splice(0, nMiddle));
  if (has('keywords:existence')) body.splice(1 + rng.int(body.length), 0, pick(rng, sentencePool(KEYWORD_SENTENCES)));
  if (freqKw) {
    const ks = rng.shuffle(sentencePool(KEYWORD_SENTENCES, { ...slots, kw: freqKw }));
    for (let i = 0; i < freqN; i++) body.splice(1 + rng.int(body.length), 0, ks[i % ks.length]!);
  }
  const closings = sentencePool(CLOSINGS);
  if (closings.length && wordsRel !== 'less than') body.push(pick(rng, closings));

  // paragraphs (blank-line separated); bullets follow the story paragraph
  const paras: string[] = [body.join(' ')];
  if (nBullets) {
    const pool = middles.length >= nBullets ? middles : rng.shuffle(sentencePool(MIDDLES));
    const items = pool.slice(0, nBullets);
    paras.push(`Here is what ${slots.Name} did:\n` + items.map((s) => `* ${s}`).join('\n'));
  }
  let title: string | null = null;
  if (has('detectable_format:title')) title = `<<${fill(pick(rng, TITLES), slots)}>>`;
  let endPhrase: string | null = null;
  if (has('startend:end_checker')) endPhrase = pick(rng, END_PHRASES.filter((p) => !has('punctuation:no_comma') || !p.includes(',')));
  if (endPhrase) paras.push(endPhrase);
  if (has('detectable_content:postscript')) paras.push(`P.S. ${fill(pick(rng, PS_TEXTS), slots)}`);

  let text = (title ? title + '\n\n' : '') + paras.join('\n\n');
  if (has('punctuation:no_comma')) text = text.replace(/,\s*/g, ' ').replace(/,/g, '');
  if (has('change_case:english_lowercase')) text = text.toLowerCase();
  if (has('change_case:english_capital')) text = text.toUpperCase();
  if (has('startend:quotation')) text = `"${text}"`;

  // kwargs and sentences in id order (word bounds set from the finished response)
  const words = countWordsLike(text);
  const kwargs: Kwargs[] = [];
  const sentences: string[] = [];
  for (const id of ids) {
    switch (id) {
      case 'change_case:english_lowercase':
        kwargs.push({});
        sentences.push('Write in English using only lowercase letters.');
        break;
      case 'change_case:english_capital':
        kwargs.push({});
        sentences.push('Write in English using only capital letters.');
        break;
      case 'keywords:existence':
        kwargs.push({ keywords: [slots.kw] });
        sentences.push(`Include the word "${slots.kw}".`);
        break;
      case 'keywords:frequency':
        kwargs.push({ keyword: freqKw, frequency: freqN, relation: 'at least' });
        sentences.push(`Use the word "${freqKw}" at least ${freqN} times.`);
        break;
      case 'keywords:forbidden_words':
        kwargs.push({ forbidden_words: [forbidden] });
        sentences.push(`Do not use the word "${forbidden}".`);
        break;
      case 'startend:end_checker':
        kwargs.push({ end_phrase: endPhrase });
        sentences.push(`End your answer with the exact phrase "${endPhrase}"`);
        break;
      case 'startend:quotation':
        kwargs.push({});
        sentences.push('Wrap your whole answer in double quotation marks.');
        break;
      case 'length_constraints:number_words': {
        // "at least N": N at or a little below the length; "less than N": a little above it
        const n = wordsRel === 'at least' ? Math.max(5, Math.floor((words - rng.int(6)) / 5) * 5) : Math.ceil((words + 1 + rng.int(6)) / 5) * 5;
        kwargs.push({ num_words: n, relation: wordsRel });
        sentences.push(`Use ${wordsRel} ${n} words.`);
        break;
      }
      case 'detectable_content:postscript':
        kwargs.push({ postscript_marker: 'P.S.' });
        sentences.push('At the end, add a postscript starting with P.S.');
        break;
      case 'detectable_format:title':
        kwargs.push({});
        sentences.push('Give your answer a title in double angular brackets, like <<title>>.');
        break;
      case 'punctuation:no_comma':
        kwargs.push({});
        sentences.push('Do not use any commas.');
        break;
      case 'detectable_format:number_bullet_lists':
        kwargs.push({ num_bullets: nBullets });
        sentences.push(`Use exactly ${nBullets} bullet points, like: * point.`);
        break;
    }
  }
  return { base, ids: [...ids], kwargs, sentences, output: text };
}

/** Checks a built example with the IFEval checker in strict mode (and the forbidden word against the prompt parts we add). */
export function verifyRecord(r: Pick<SynthRecord, 'prompt' | 'instruction_id_list' | 'kwargs' | 'output'>, nlp: CheckContext = defaultIfevalNlp()): boolean {
  const input: IfevalInput = { prompt: r.prompt, instruction_id_list: r.instruction_id_list, kwargs: r.kwargs };
  return evaluate(input, r.output, nlp, 'strict').follow_all_instructions;
}

/** Number of constraints of example i: train cycles through 1..max (weights 3:4:3 for 1..3), test cycles 2..max so every run of >= 3 test examples has a max-size prompt. */
function constraintCount(rng: Rng, i: number, split: Split, max: number): number {
  if (split === 'test') return 2 + (i % (max - 1));
  if (max === 3) {
    const u = rng.float();
    return u < 0.3 ? 1 : u < 0.7 ? 2 : 3;
  }
  return 1 + rng.int(max);
}

export function synthesizeConstraints(o: SynthOptions): SynthResult {
  const split = o.split ?? 'train';
  const max = o.maxConstraints ?? (split === 'test' ? 4 : 3);
  if (!Number.isInteger(o.n) || o.n < 0) throw new MixtuneError(`synth constraints: --n must be a non-negative integer (got ${o.n})`);
  if (split === 'train' && (max < 1 || max > 3)) throw new MixtuneError(`synth constraints: the train split has 1-3 constraints per prompt (got max ${max}); 4-constraint combinations are held out for the test split`);
  if (split === 'test' && (max < 2 || max > 4)) throw new MixtuneError(`synth constraints: the test split has 2-4 constraints per prompt (got max ${max})`);
  const nlp = o.nlp ?? defaultIfevalNlp();
  // separate streams per split so a train and a test file with the same seed differ
  const rng = new Rng((o.seed * 2654435761 + (split === 'test' ? 0x7e57 : 0x7a1)) >>> 0);
  const records: SynthRecord[] = [];
  let dropped = 0;
  let retries = 0;
  for (let i = 0; i < o.n; i++) {
    const k = constraintCount(rng, i, split, max);
    const ids = drawCombo(rng, k, split);
    let kept: SynthRecord | null = null;
    for (let attempt = 0; attempt < 8 && !kept; attempt++) {
      const b = buildExample(rng, ids);
      const rec: SynthRecord = {
        id: `${split}-${o.seed}-${i}`, split, instruction: b.base, constraints: b.sentences, output: b.output,
        instruction_id_list: b.ids, kwargs: b.kwargs, prompt: composeInstruction(b.base, b.sentences),
      };
      if (verifyRecord(rec, nlp)) kept = rec;
      else retries++;
    }
    if (kept) records.push(kept);
    else dropped++;
  }
  return { records, dropped, retries };
}
