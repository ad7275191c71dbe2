// The benchmark runs behind `mixtune eval gsm8k | math | mbpp | humaneval`: generate answers with a
// model (chat template, greedy) or take existing ones (responses), score them, and keep per-item
// results in DIR/results.jsonl (a rerun skips items already there), the run settings in
// DIR/run.json and the totals in DIR/summary.json.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { ensureWritableDir } from '../util/fs.js';
import { nativeKernels } from '../tensor/native.js';
import { checkModelAndTokenizer, loadModel, loadTokenizer, modelConfigOf } from '../io/load.js';
import { checkGenerateMemory } from '../train/memory.js';
import { ChatTemplate } from '../io/chat.js';
import { MixtuneError } from '../util/errors.js';
import { type ResultRow, ResultsFile, applyLimit, checkRunFile, generateAnswer, readResponses, round, startProgress, writeSummary } from './common.js';
import { type SandboxOptions, probeIsolation, runPool } from './code.js';
import { GSM8K_INSTRUCTION, HUMANEVAL_INSTRUCTION, MATH_INSTRUCTION, TASKS, type TaskName, type TaskItem } from './tasks.js';

/**
 * `--prompt-template 'Question: {question}\nAnswer:'`: the user turn built from the item's own
 * fields (the few-shot turns keep the task's format). An unknown field names the fields there are.
 */
export function fillPromptTemplate(template: string, record: Record<string, unknown>, where: string): string {
  return template.replace(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, field: string) => {
    const v = record[field];
    if (v === undefined) throw new MixtuneError(`--prompt-template: ${where} has no field {${field}} (fields: ${Object.keys(record).join(', ')})`);
    return typeof v === 'string' ? v : JSON.stringify(v);
  });
}

export interface EvalTaskOptions {
  /** Code tasks: run without bubblewrap when it is unavailable (weak isolation; said in the summary). */
  unsafeNoSandbox?: boolean;
  /** The user turn as a template over the item's fields ({question}, {problem}, {text}, {prompt}). */
  promptTemplate?: string;
  model?: string;
  tokenizer?: string;
  data?: string;
  out: string;
  limit?: number;
  maxNewTokens?: number;
  shots?: number;
  system?: string;
  responses?: string;
  /** Code tasks: per-program time limit in seconds. */
  timeout?: number;
  memoryMb?: number;
  jobs?: number;
  split?: string;
  /** false: plain progress lines even on a TTY. */
  progress?: boolean;
  /** Code tasks: false = no network namespace (preamble only). */
  netns?: boolean;
}

export interface EvalSummary {
  task: TaskName;
  metric: 'accuracy' | 'pass@1';
  score: number | null;
  correct: number;
  scored: number;
  selected: number;
  [key: string]: unknown;
}

const PROMPTS: Record<TaskName, string> = {
  gsm8k: `${GSM8K_INSTRUCTION}\n\nQuestion: {question}`,
  math: `{problem}\n\n${MATH_INSTRUCTION}`,
  mbpp: 'You are an expert Python programmer, and here is your task: {text} Your code should pass these tests:\n\n{tests}\n\nWrite the function in a single ```python code block.',
  humaneval: `${HUMANEVAL_INSTRUCTION}\n\n\`\`\`python\n{prompt}\`\`\``,
};

function countBy(rows: ResultRow[], field: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of rows) {
    const v = r[field];
    if (v === undefined) continue;
    const k = String(v);
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

/** Runs one eval task (see the file comment); returns the summary that was written. */
export async function runEval(taskName: TaskName, o: EvalTaskOptions): Promise<EvalSummary> {
  const task = TASKS[taskName];
  const started = performance.now();
  if ((o.model === undefined) === (o.responses === undefined)) {
    throw new MixtuneError(`eval ${taskName}: pass either --model (generate answers) or --responses FILE (score existing ones)`);
  }
  const shots = o.shots ?? 0;
  if (shots > task.maxShots) throw new MixtuneError(`--shots: ${taskName} has at most ${task.maxShots} few-shot examples, got ${shots}`);
  if (o.split !== undefined && taskName !== 'mbpp') throw new MixtuneError(`--split is only for mbpp`);
  const dataPath = resolve(o.data ?? task.defaultData());
  if (!existsSync(dataPath)) throw new MixtuneError(`${dataPath}: ${taskName} data file not found${o.data ? '' : ' (the default is our development layout; pass --data FILE)'}`);
  // fail fast: the output folder, the model and its tokenizer before loading data or generating
  ensureWritableDir(resolve(o.out), '--out');
  if (o.model !== undefined) {
    checkModelAndTokenizer(o.model, o.tokenizer);
    checkGenerateMemory(modelConfigOf(o.model), { contextTokens: o.maxNewTokens ?? task.defaultMaxNewTokens, what: `eval ${taskName}` });
  }
  const all = task.load(dataPath, o.split);
  const items = applyLimit(all, o.limit);
  const maxNewTokens = o.maxNewTokens ?? task.defaultMaxNewTokens;
  const sandbox: SandboxOptions = {
    timeoutS: o.timeout ?? 10, memoryMB: o.memoryMb ?? 1024, netns: o.netns === false ? 'off' : 'auto', ...(o.unsafeNoSandbox ? { unsafeNoSandbox: true } : {}),
  };
  const isolation = task.kind === 'code' ? probeIsolation(sandbox) : undefined;

  const settings: Record<string, unknown> = {
    task: taskName,
    data: dataPath,
    split: taskName === 'mbpp' ? (o.split ?? 'test') : null,
    model: o.model !== undefined ? resolve(o.model) : null,
    tokenizer: o.tokenizer !== undefined ? resolve(o.tokenizer) : null,
    responses: o.responses !== undefined ? resolve(o.responses) : null,
    shots,
    system: o.system ?? null,
    prompt_template: o.promptTemplate ?? null,
    max_new_tokens: o.model !== undefined ? maxNewTokens : null,
    ...(task.kind === 'code' ? { timeout_s: sandbox.timeoutS, memory_mb: sandbox.memoryMB } : {}),
  };
  checkRunFile(o.out, settings);
  const results = new ResultsFile(o.out);
  const todo = items.filter((it) => !results.has(it.id));

  // Where responses come from.
  let responseOf: (it: TaskItem) => { text: string; extra: Record<string, unknown> } | null;
  let missing: string[] = [];
  if (o.responses !== undefined) {
    const given = readResponses(o.responses);
    missing = items.filter((it) => !given.has(it.id)).map((it) => it.id);
    if (items.length > 0 && missing.length === items.length) {
      throw new MixtuneError(`${o.responses}: no response matches any of the ${items.length} ${taskName} items of ${dataPath} ` +
        '(joined by "id" / "task_id"): is it the responses file of this data?');
    }
    responseOf = (it) => {
      const text = given.get(it.id);
      return text === undefined ? null : { text, extra: {} };
    };
  } else {
    const { model, format } = loadModel(o.model!, nativeKernels());
    const tok = loadTokenizer(o.tokenizer, o.model!, model.config.vocabSize);
    const template = ChatTemplate.forTokenizer(tok);
    // llama2.c's TinyStories models mark story boundaries with BOS (as `mixtune generate` stops on it).
    const extraStopIds = format === 'llama2c' && tok.bosId >= 0 ? [tok.bosId] : [];
    responseOf = (it) => {
      const msgs = task.messages(it, { shots, system: o.system }, dataPath);
      if (o.promptTemplate !== undefined) msgs[msgs.length - 1] = { role: 'user', content: fillPromptTemplate(o.promptTemplate, it.record, `${dataPath}: item ${it.id}`) };
      const g = generateAnswer(model, tok, template, msgs, { maxNewTokens, extraStopIds });
      return { text: g.text, extra: { prompt_tokens: g.promptTokens, new_tokens: g.newTokens, stopped_by: g.stoppedBy } };
    };
  }

  const runnable = todo.filter((it) => !missing.includes(it.id));
  const selectedIds = new Set(items.map((it) => it.id));
  const rowsInSelection = (): ResultRow[] => results.rows.filter((r) => selectedIds.has(r.id));
  const scoreText = (): string => {
    const rows = rowsInSelection();
    const c = rows.filter((r) => r.correct === true).length;
    return `${task.metric}=${rows.length ? (c / rows.length).toFixed(3) : '-'} (${c}/${rows.length})`;
  };
  const progress = startProgress(`${taskName}`, items.length - missing.filter((id) => !results.has(id)).length, items.length - todo.length, {
    ...(o.progress === false ? { bar: false } : {}),
  });
  const scoreOne = async (it: TaskItem): Promise<void> => {
    const resp = responseOf(it);
    if (resp === null) return;
    const s = await task.score(it, resp.text, { sandbox });
    results.append({ id: it.id, correct: s.correct, ...s.fields, response: resp.text, ...resp.extra });
    progress.tick(scoreText());
  };
  try {
    if (o.responses !== undefined && task.kind === 'code') await runPool(runnable, Math.max(1, o.jobs ?? 1), scoreOne);
    else for (const it of runnable) await scoreOne(it);
  } finally {
    progress.stop();
  }

  const rows = rowsInSelection();
  const correct = rows.filter((r) => r.correct === true).length;
  const generated = rows.filter((r) => typeof r.new_tokens === 'number');
  const summary: EvalSummary = {
    task: taskName,
    metric: task.metric,
    score: rows.length > 0 ? round(correct / rows.length, 6) : null,
    correct,
    scored: rows.length,
    selected: items.length,
    items_in_data: all.length,
    limit: o.limit ?? null,
    missing_responses: missing.filter((id) => !results.has(id)).length,
    scored_this_run: runnable.length,
    data: dataPath,
    split: settings.split,
    model: settings.model,
    tokenizer: settings.tokenizer,
    responses: settings.responses,
    shots,
    system: o.system ?? null,
    prompt_template: o.promptTemplate ?? null,
    prompt: PROMPTS[taskName],
    max_new_tokens: settings.max_new_tokens,
    ...(task.kind === 'math' ? { extraction: countBy(rows, 'method') } : {}),
    ...(task.kind === 'code' ? { status: countBy(rows, 'status'), timeout_s: sandbox.timeoutS, memory_mb: sandbox.memoryMB, isolation } : {}),
    ...(generated.length > 0
      ? {
          stopped_by: countBy(generated, 'stopped_by'),
          mean_new_tokens: round(generated.reduce((s, r) => s + (r.new_tokens as number), 0) / generated.length, 2),
        }
      : {}),
    results: resolve(results.path),
    seconds_this_run: round((performance.now() - started) / 1000, 3),
  };
  writeSummary(o.out, summary);
  return summary;
}

