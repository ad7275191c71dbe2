// Reading and validating IFEval input, response and flattened files (errors name file:line and field).
import { MixtuneError } from '../../util/errors.js';
import { composeInstruction } from '../../data/readers.js';
import { renderIfevalConstraint } from '../../data/ifeval-constraints.js';
import { BadRecord } from '../../data/bad-record.js';
import { INSTRUCTIONS, KwargsError, type Kwargs } from './checks.js';
import { lineOf, readJsonl } from './io.js';
import type { IfevalInput } from './score.js';

/** An input prompt plus where it came from (flattened items carry their source prompt's key). */
export interface EvalItem extends IfevalInput {
  /** For flattened items: the key of the multi-instruction prompt it was cut from. */
  source_key?: number | string;
  /** The record's base instruction (IFEval-style data with structured constraints). */
  base?: string;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function validateKwargs(where: string, id: string, kw: Kwargs, field: string): void {
  const c = INSTRUCTIONS.get(id)!;
  try {
    c.check('x', kw, { detectLanguage: () => 'en', countSentences: () => 1, wordTokenize: () => ['x'] });
  } catch (e) {
    if (e instanceof KwargsError) throw new MixtuneError(`${where}: field ${field}${e.message.replace(/^kwargs/, '')} (${id})`);
    throw new MixtuneError(`${where}: field ${field}: ${(e as Error).message} (${id})`);
  }
}

function cleanKwargs(kw: unknown, where: string, field: string): Kwargs {
  if (kw === undefined || kw === null) return {};
  if (!isObj(kw)) throw new MixtuneError(`${where}: field ${field} must be an object`);
  return Object.fromEntries(Object.entries(kw).filter(([, v]) => v !== null && v !== undefined));
}

/** input_data.jsonl: {key?, prompt, instruction_id_list, kwargs, base?} per line. */
export function readInputs(path: string): EvalItem[] {
  const recs = readJsonl<Record<string, unknown>>(path);
  return recs.map((rec) => {
    const where = `${path}:${lineOf(rec)}`;
    if (typeof rec.prompt !== 'string') throw new MixtuneError(`${where}: field prompt must be a string`);
    const ids = rec.instruction_id_list;
    if (!Array.isArray(ids) || ids.length === 0 || ids.some((x) => typeof x !== 'string')) throw new MixtuneError(`${where}: field instruction_id_list must be a non-empty list of strings`);
    ids.forEach((id, i) => { if (!INSTRUCTIONS.has(id as string)) throw new MixtuneError(`${where}: field instruction_id_list[${i}]: unknown instruction id '${id}'`); });
    let kwargs = rec.kwargs;
    if (typeof kwargs === 'string') {
      try { kwargs = JSON.parse(kwargs); } catch { throw new MixtuneError(`${where}: field kwargs is a string but not valid JSON`); }
    }
    if (kwargs === undefined || kwargs === null) kwargs = ids.map(() => ({}));
    if (!Array.isArray(kwargs) || kwargs.length !== ids.length) throw new MixtuneError(`${where}: field kwargs must be a list with one object per instruction id (${ids.length})`);
    const kws = kwargs.map((kw, i) => cleanKwargs(kw, where, `kwargs[${i}]`));
    (ids as string[]).forEach((id, i) => validateKwargs(where, id, kws[i]!, `kwargs[${i}]`));
    const item: EvalItem = { prompt: rec.prompt, instruction_id_list: ids as string[], kwargs: kws };
    if (typeof rec.key === 'number' || typeof rec.key === 'string') item.key = rec.key;
    if (typeof rec.base === 'string' && rec.base.trim()) item.base = rec.base.trim();
    return item;
  });
}

/** responses.jsonl: {prompt, response} per line -> prompt text -> response (the first one wins). */
export function readResponses(path: string, opts: { tolerateTruncatedLast?: boolean } = {}): Map<string, string> {
  const out = new Map<string, string>();
  for (const rec of readJsonl<Record<string, unknown>>(path, opts)) {
    const where = `${path}:${lineOf(rec)}`;
    if (typeof rec.prompt !== 'string') throw new MixtuneError(`${where}: field prompt must be a string`);
    if (typeof rec.response !== 'string') throw new MixtuneError(`${where}: field response must be a string`);
    if (!out.has(rec.prompt)) out.set(rec.prompt, rec.response);
  }
  return out;
}

/**
 * A user-supplied flattened file: one single-instruction prompt per line,
 * {prompt, instruction_id | instruction_id_list: [id], kwargs: {...} | [{...}], source_key?, key?}.
 */
export function readFlatInputs(path: string): EvalItem[] {
  return readJsonl<Record<string, unknown>>(path).map((rec, n) => {
    const where = `${path}:${lineOf(rec)}`;
    if (typeof rec.prompt !== 'string') throw new MixtuneError(`${where}: field prompt must be a string`);
    let id: unknown = rec.instruction_id;
    if (id === undefined && Array.isArray(rec.instruction_id_list)) {
      if (rec.instruction_id_list.length !== 1) throw new MixtuneError(`${where}: field instruction_id_list must hold exactly one id in a flattened file`);
      id = rec.instruction_id_list[0];
    }
    if (typeof id !== 'string') throw new MixtuneError(`${where}: field instruction_id must be a string`);
    if (!INSTRUCTIONS.has(id)) throw new MixtuneError(`${where}: field instruction_id: unknown instruction id '${id}'`);
    let kwRaw = rec.kwargs;
    if (Array.isArray(kwRaw)) {
      if (kwRaw.length !== 1) throw new MixtuneError(`${where}: field kwargs must hold exactly one object in a flattened file`);
      kwRaw = kwRaw[0];
    }
    const kw = cleanKwargs(kwRaw, where, 'kwargs');
    validateKwargs(where, id, kw, 'kwargs');
    const item: EvalItem = { prompt: rec.prompt, instruction_id_list: [id], kwargs: [kw], key: (typeof rec.key === 'number' || typeof rec.key === 'string') ? rec.key : `flat-${n + 1}` };
    if (typeof rec.source_key === 'number' || typeof rec.source_key === 'string') item.source_key = rec.source_key;
    return item;
  });
}

export const FLATTEN_EXPLANATION =
  'IFEval prompts weave their constraints into the prompt text (e.g. "Write a 300+ word summary ... Do not use any commas and highlight at least 3 sections"), ' +
  'so the other constraints cannot be dropped mechanically; supply rewritten single-constraint prompts with --flat-input FILE, or data with a `base` field (the bare instruction)';

/**
 * Flattens items into one single-instruction item per instruction. An item with one instruction is
 * kept as is; an item with several needs its structured form (a `base` instruction): each
 * single-constraint prompt is composeInstruction(base, [the rendered constraint sentence]).
 */
export function flattenItems(items: readonly EvalItem[], inputPath: string): EvalItem[] {
  const unflattenable = items.filter((it) => it.instruction_id_list.length > 1 && it.base === undefined);
  if (unflattenable.length > 0) {
    throw new MixtuneError(`${inputPath}: --flatten: ${unflattenable.length} multi-instruction prompt(s) (first key ${unflattenable[0]!.key ?? '?'}) have no structured constraints to rebuild single-constraint prompts from. ${FLATTEN_EXPLANATION}`);
  }
  const out: EvalItem[] = [];
  for (const it of items) {
    if (it.instruction_id_list.length === 1) {
      out.push({ ...it, source_key: it.key ?? it.prompt });
      continue;
    }
    it.instruction_id_list.forEach((id, i) => {
      let sentence: string;
      try {
        sentence = renderIfevalConstraint(id, it.kwargs[i], `kwargs[${i}]`);
      } catch (e) {
        if (e instanceof BadRecord) throw new MixtuneError(`${inputPath}: key ${it.key ?? '?'}: ${e.message}`);
        throw e;
      }
      out.push({
        key: `${it.key ?? '?'}#${i}`,
        source_key: it.key ?? it.prompt,
        prompt: composeInstruction(it.base!, [sentence]),
        instruction_id_list: [id],
        kwargs: [it.kwargs[i]!],
      });
    });
  }
  return out;
}
