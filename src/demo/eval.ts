// Evaluation of a model on synthetic multi-constraint records with the IFEval checker: greedy
// generation through the chat template, strict/loose prompt- and instruction-level accuracy on the
// full prompts, and flattened single-constraint accuracy (one prompt per constraint, built from
// the bare instruction + that constraint's sentence; only that instruction is checked).
import type { LlamaModel } from '../model/llama.js';
import type { Tokenizer } from '../tokenizer.js';
import { ChatTemplate, encodePrompt } from '../io/chat.js';
import { generate } from '../infer/generate.js';
import { composeInstruction } from '../data/readers.js';
import { checkInstruction, evaluate, summarize, type IfevalResult } from '../eval/ifeval/score.js';
import type { CheckContext, Kwargs } from '../eval/ifeval/checks.js';
import { Progress } from '../eval/ifeval/progress.js';

/** What evaluation needs of a record (SynthRecord satisfies it). */
export interface EvalRecord {
  instruction: string;
  constraints: string[];
  instruction_id_list: string[];
  kwargs: Kwargs[];
  prompt: string;
}

export interface DemoMetrics {
  prompt_strict: number;
  inst_strict: number;
  prompt_loose: number;
  inst_loose: number;
  flatten_inst_strict: number;
}

export const METRIC_KEYS: ReadonlyArray<keyof DemoMetrics> = ['prompt_strict', 'inst_strict', 'prompt_loose', 'inst_loose', 'flatten_inst_strict'];

/** One flattened prompt: the bare instruction + constraint i, checked on instruction i only. */
export interface FlatItem {
  source: number;
  index: number;
  prompt: string;
  id: string;
  kwargs: Kwargs;
}

export function flattenRecords(records: readonly EvalRecord[]): FlatItem[] {
  const out: FlatItem[] = [];
  records.forEach((r, source) => {
    r.instruction_id_list.forEach((id, index) => {
      out.push({ source, index, prompt: composeInstruction(r.instruction, [r.constraints[index]!]), id, kwargs: r.kwargs[index]! });
    });
  });
  return out;
}

/** Scores responses; `flatResponses[j]` answers flattenRecords(records)[j]. */
export function scoreResponses(records: readonly EvalRecord[], responses: readonly string[], flatResponses: readonly string[], nlp: CheckContext): { metrics: DemoMetrics; strict: IfevalResult[]; loose: IfevalResult[]; flat: boolean[] } {
  const strict = records.map((r, i) => evaluate(r, responses[i]!, nlp, 'strict'));
  const loose = records.map((r, i) => evaluate(r, responses[i]!, nlp, 'loose'));
  const s = summarize(strict);
  const l = summarize(loose);
  const flatItems = flattenRecords(records);
  const flat = flatItems.map((f, j) => checkInstruction(f.id, flatResponses[j]!, f.kwargs, nlp, 'strict'));
  return {
    metrics: {
      prompt_strict: s.prompt_level.accuracy,
      inst_strict: s.instruction_level.accuracy,
      prompt_loose: l.prompt_level.accuracy,
      inst_loose: l.instruction_level.accuracy,
      flatten_inst_strict: flat.length ? flat.filter((x) => x).length / flat.length : 0,
    },
    strict, loose, flat,
  };
}

export interface GenerateAllOptions {
  maxNewTokens: number;
  /** llama2.c models stop at EOS and BOS. */
  stopIds: readonly number[];
  label: string;
  progress?: boolean;
}

/** Greedy responses to user prompts rendered with the chat template (+ generation prompt). */
export function generateResponses(model: LlamaModel, tok: Tokenizer, template: ChatTemplate, prompts: readonly string[], o: GenerateAllOptions): string[] {
  const tty = o.progress ?? Boolean(process.stderr.isTTY);
  // without a TTY: a plain line at most every 10 s (and the last one)
  let last = 0;
  const plain = (s: string): void => {
    const now = performance.now();
    if (o.progress === false) return;
    if (now - last > 10000 || s.includes(`${prompts.length}/${prompts.length}`)) {
      last = now;
      process.stderr.write(s);
    }
  };
  const bar = new Progress(o.label, prompts.length, 0, tty, plain);
  const out: string[] = [];
  try {
    for (const p of prompts) {
      const ids = encodePrompt(tok, template, [{ role: 'user', content: p }]);
      const r = generate(model, ids, { maxNewTokens: o.maxNewTokens, temperature: 0, stopIds: o.stopIds });
      out.push(tok.decode(r.tokens.filter((id) => !o.stopIds.includes(id))));
      bar.tick();
    }
  } finally {
    bar.stop();
  }
  return out;
}

export interface EvalOutcome {
  metrics: DemoMetrics;
  responses: string[];
  flatResponses: string[];
  strict: IfevalResult[];
  flat: boolean[];
  seconds: number;
}

export function evaluateModel(model: LlamaModel, tok: Tokenizer, template: ChatTemplate, records: readonly EvalRecord[], nlp: CheckContext, o: GenerateAllOptions): EvalOutcome {
  const t0 = performance.now();
  const flatItems = flattenRecords(records);
  const all = generateResponses(model, tok, template, [...records.map((r) => r.prompt), ...flatItems.map((f) => f.prompt)], o);
  const responses = all.slice(0, records.length);
  const flatResponses = all.slice(records.length);
  const s = scoreResponses(records, responses, flatResponses, nlp);
  return { metrics: s.metrics, responses, flatResponses, strict: s.strict, flat: s.flat, seconds: (performance.now() - t0) / 1000 };
}
