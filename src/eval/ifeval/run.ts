// `mixtune eval ifeval`: score existing responses (or generate them first), write the reference
// result files, summary.json and a summary table. Generation is resumable: DIR/responses.jsonl is
// appended per item and a rerun skips prompts that already have a response.
import { existsSync, writeSync } from 'node:fs';
import { ensureWritableDir, writeFileAtomic } from '../../util/fs.js';
import { join } from 'node:path';
import { MixtuneError } from '../../util/errors.js';
import { type CheckContext, defaultNlp } from './checks.js';
import { type EvalItem, flattenItems, readFlatInputs, readInputs, readResponses } from './data-files.js';
import { appendJsonl } from './io.js';
import { defaultLangModel, detectLanguage } from './langdetect.js';
import { Progress } from './progress.js';
import { type IfevalResult, type ModeSummary, evaluate, summarize } from './score.js';

export interface IfevalRunOptions {
  /** input_data.jsonl (IFEval format). Not needed with flatInput. */
  input?: string;
  /** {prompt, response} JSONL to score (exclusive with model). */
  responses?: string;
  /** Generate the responses with this model first. */
  model?: string;
  tokenizer?: string;
  system?: string;
  maxNewTokens?: number;
  out: string;
  limit?: number;
  /** Score each multi-instruction prompt as one prompt per instruction (needs structured data). */
  flatten?: boolean;
  /** A user-supplied flattened file (single-instruction prompts); replaces input. */
  flatInput?: string;
  /** true/false forces the bar on/off; default: on when stderr is a TTY. */
  progress?: boolean;
  /** Where the summary table goes (default stdout). */
  print?: (s: string) => void;
  /** Language detector / sentence splitter override (tests). */
  nlp?: CheckContext;
}

export interface IfevalSummary {
  input: string;
  responses: string;
  mode: 'standard' | 'flatten' | 'flat-input';
  prompts: number;
  scored: number;
  /** Prompts (key, else the prompt's first 80 characters) that have no response. */
  missing_responses: Array<number | string>;
  strict: ModeSummary;
  loose: ModeSummary;
  /** Flattened runs: per source prompt, were all its single-instruction prompts followed. */
  by_source?: { strict: { followed: number; total: number; accuracy: number }; loose: { followed: number; total: number; accuracy: number } };
}

let nlpDefault: CheckContext | undefined;
export function defaultIfevalNlp(): CheckContext {
  if (!nlpDefault) {
    const model = defaultLangModel();
    nlpDefault = defaultNlp((t) => detectLanguage(model, t));
  }
  return nlpDefault;
}

function writeAtomic(path: string, text: string): void {
  writeFileAtomic(path, (fd) => writeSync(fd, text), 'the results');
}

/** Loads the items to evaluate according to the options (input / flatten / flat-input, limit). */
export function loadItems(o: IfevalRunOptions): { items: EvalItem[]; mode: IfevalSummary['mode']; source: string } {
  let items: EvalItem[];
  let mode: IfevalSummary['mode'] = 'standard';
  let source: string;
  if (o.flatInput) {
    items = readFlatInputs(o.flatInput);
    mode = 'flat-input';
    source = o.flatInput;
  } else {
    if (!o.input) throw new MixtuneError('eval ifeval: --input FILE is required (or --flat-input FILE)');
    items = readInputs(o.input);
    source = o.input;
    if (o.flatten) {
      items = flattenItems(items, o.input);
      mode = 'flatten';
    }
  }
  if (o.limit !== undefined) items = items.slice(0, o.limit);
  return { items, mode, source };
}

/** Generates a response per item into DIR/responses.jsonl, skipping prompts already there. */
export async function generateResponses(items: readonly EvalItem[], o: IfevalRunOptions & { model: string }): Promise<string> {
  const path = join(o.out, 'responses.jsonl');
  const done = existsSync(path) ? readResponses(path, { tolerateTruncatedLast: true }) : new Map<string, string>();
  // an interrupted run may have left a truncated last line: rewrite the file from what parsed
  if (existsSync(path)) writeAtomic(path, [...done].map(([prompt, response]) => JSON.stringify({ prompt, response }) + '\n').join(''));
  const seen = new Set<string>();
  const todo = items.filter((it) => {
    if (done.has(it.prompt) || seen.has(it.prompt)) return false;
    seen.add(it.prompt);
    return true;
  });
  const uniqueTotal = new Set(items.map((it) => it.prompt)).size;
  if (todo.length === 0) return path;
  const [{ nativeKernels }, { loadModel, loadTokenizer }, { ChatTemplate, encodePrompt }, { generate }] = await Promise.all([
    import('../../tensor/native.js'), import('../../io/load.js'), import('../../io/chat.js'), import('../../infer/generate.js'),
  ]);
  const { model, format } = loadModel(o.model, nativeKernels());
  const tok = loadTokenizer(o.tokenizer, o.model, model.config.vocabSize);
  const template = ChatTemplate.forTokenizer(tok);
  const stopIds = format === 'llama2c' ? [tok.eosId, tok.bosId] : [...(tok.stopIds ?? [tok.eosId])];
  const progress = new Progress('ifeval generate', uniqueTotal, uniqueTotal - todo.length, o.progress);
  try {
    for (const it of todo) {
      const messages = [
        ...(o.system !== undefined ? [{ role: 'system' as const, content: o.system }] : []),
        { role: 'user' as const, content: it.prompt },
      ];
      const prompt = encodePrompt(tok, template, messages);
      if (prompt.length === 0) prompt.push(tok.bosId >= 0 ? tok.bosId : tok.eosId);
      const r = generate(model, prompt, { maxNewTokens: o.maxNewTokens ?? 1280, temperature: 0, stopIds });
      const ids = r.tokens.filter((id) => !stopIds.includes(id));
      appendJsonl(path, { prompt: it.prompt, response: tok.decode(ids) });
      progress.tick(`${r.tokens.length} tokens (${r.stoppedBy})`);
    }
  } finally {
    progress.stop();
  }
  return path;
}

/** Scores items against responses; results in input order, prompts without a response listed. */
export function scoreItems(items: readonly EvalItem[], responses: ReadonlyMap<string, string>, nlp: CheckContext): { strict: IfevalResult[]; loose: IfevalResult[]; missing: Array<number | string>; scoredItems: EvalItem[] } {
  const strict: IfevalResult[] = [];
  const loose: IfevalResult[] = [];
  const missing: Array<number | string> = [];
  const scoredItems: EvalItem[] = [];
  for (const it of items) {
    const resp = responses.get(it.prompt);
    if (resp === undefined) { missing.push(it.key ?? it.prompt.slice(0, 80)); continue; }
    strict.push(evaluate(it, resp, nlp, 'strict'));
    loose.push(evaluate(it, resp, nlp, 'loose'));
    scoredItems.push(it);
  }
  return { strict, loose, missing, scoredItems };
}

function bySource(items: readonly EvalItem[], results: readonly IfevalResult[]): { followed: number; total: number; accuracy: number } {
  const m = new Map<string, boolean>();
  items.forEach((it, i) => {
    const k = String(it.source_key ?? it.key ?? it.prompt);
    m.set(k, (m.get(k) ?? true) && results[i]!.follow_all_instructions);
  });
  const followed = [...m.values()].filter((x) => x).length;
  return { followed, total: m.size, accuracy: m.size ? followed / m.size : 0 };
}

export async function runIfevalEval(o: IfevalRunOptions): Promise<IfevalSummary> {
  if (o.model && o.responses) throw new MixtuneError('eval ifeval: pass either --responses FILE (score existing responses) or --model M (generate them), not both');
  if (!o.model && !o.responses) throw new MixtuneError('eval ifeval: pass --responses FILE to score existing responses, or --model M to generate them');
  if (o.flatten && o.flatInput) throw new MixtuneError('eval ifeval: --flatten and --flat-input exclude each other (a flat input is already flattened)');
  // fail fast: the output folder, the model and its tokenizer before reading data or generating
  ensureWritableDir(o.out, '--out');
  if (o.model) {
    const { checkModelAndTokenizer, modelConfigOf } = await import('../../io/load.js');
    checkModelAndTokenizer(o.model, o.tokenizer);
    (await import('../../train/memory.js')).checkGenerateMemory(modelConfigOf(o.model), { contextTokens: (o.maxNewTokens ?? 1280) + 2048, what: 'eval ifeval' });
  }
  const { items, mode, source } = loadItems(o);
  const responsesPath = o.model ? await generateResponses(items, { ...o, model: o.model }) : o.responses!;
  const responses = readResponses(responsesPath, { tolerateTruncatedLast: !!o.model });
  const nlp = o.nlp ?? defaultIfevalNlp();
  const { strict, loose, missing, scoredItems } = scoreItems(items, responses, nlp);
  if (strict.length === 0 && items.length > 0) {
    throw new MixtuneError(`${responsesPath}: no response matches any of the ${items.length} prompts of ${source} ` +
      '(responses are joined to prompts by their exact "prompt" text): is it the responses file of this input?');
  }
  writeAtomic(join(o.out, 'eval_results_strict.jsonl'), strict.map((r) => JSON.stringify(r) + '\n').join(''));
  writeAtomic(join(o.out, 'eval_results_loose.jsonl'), loose.map((r) => JSON.stringify(r) + '\n').join(''));
  const summary: IfevalSummary = {
    input: source,
    responses: responsesPath,
    mode,
    prompts: items.length,
    scored: strict.length,
    missing_responses: missing,
    strict: summarize(strict),
    loose: summarize(loose),
  };
  if (mode !== 'standard') summary.by_source = { strict: bySource(scoredItems, strict), loose: bySource(scoredItems, loose) };
  writeAtomic(join(o.out, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
  (o.print ?? ((s: string) => process.stdout.write(s)))(formatSummary(summary));
  return summary;
}

/** The summary table printed by the CLI. */
export function formatSummary(s: IfevalSummary): string {
  const pct = (a: { accuracy: number; total: number }): string => (a.total ? (100 * a.accuracy).toFixed(2) : '-').padStart(8);
  const lines: string[] = [];
  lines.push(`IFEval (${s.mode}): ${s.scored}/${s.prompts} prompts scored` + (s.missing_responses.length ? `; ${s.missing_responses.length} without a response: ${s.missing_responses.slice(0, 10).join(', ')}${s.missing_responses.length > 10 ? ', ...' : ''}` : ''));
  lines.push(`${''.padEnd(48)} ${'strict'.padStart(8)} ${'loose'.padStart(8)} ${'n'.padStart(5)}`);
  lines.push(`${'prompt-level accuracy'.padEnd(48)} ${pct(s.strict.prompt_level)} ${pct(s.loose.prompt_level)} ${String(s.strict.prompt_level.total).padStart(5)}`);
  lines.push(`${'instruction-level accuracy'.padEnd(48)} ${pct(s.strict.instruction_level)} ${pct(s.loose.instruction_level)} ${String(s.strict.instruction_level.total).padStart(5)}`);
  if (s.by_source) lines.push(`${'source prompts with all instructions followed'.padEnd(48)} ${pct(s.by_source.strict)} ${pct(s.by_source.loose)} ${String(s.by_source.strict.total).padStart(5)}`);
  lines.push('per category:');
  for (const [k, a] of Object.entries(s.strict.per_category)) lines.push(`  ${k.padEnd(46)} ${pct(a)} ${pct(s.loose.per_category[k]!)} ${String(a.total).padStart(5)}`);
  lines.push('per instruction:');
  for (const [k, a] of Object.entries(s.strict.per_instruction)) lines.push(`  ${k.padEnd(46)} ${pct(a)} ${pct(s.loose.per_instruction[k]!)} ${String(a.total).padStart(5)}`);
  return lines.join('\n') + '\n';
}
