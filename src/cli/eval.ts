// `mixtune eval gsm8k | math | mbpp | humaneval`: generate answers with a model (chat template,
// greedy) or take existing ones (--responses), score them, and keep per-item results in
// DIR/results.jsonl (a rerun skips items already there), the run settings in DIR/run.json and the
// totals in DIR/summary.json.
import { resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { nativeKernels } from '../tensor/native.js';
import { loadModel, loadTokenizer } from '../io/load.js';
import { ChatTemplate } from '../io/chat.js';
import { MixtuneError } from '../util/errors.js';
import { type ResultRow, ResultsFile, applyLimit, checkRunFile, generateAnswer, readResponses, round, startProgress, writeSummary } from '../eval/common.js';
import { type SandboxOptions, probeIsolation, runPool } from '../eval/code.js';
import { GSM8K_INSTRUCTION, HUMANEVAL_INSTRUCTION, MATH_INSTRUCTION, MBPP_SPLITS, TASKS, type TaskName, type TaskItem } from '../eval/tasks.js';

export interface EvalCliOptions {
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
export async function runEval(taskName: TaskName, o: EvalCliOptions): Promise<EvalSummary> {
  const task = TASKS[taskName];
  const started = performance.now();
  if ((o.model === undefined) === (o.responses === undefined)) {
    throw new MixtuneError(`eval ${taskName}: pass either --model (generate answers) or --responses FILE (score existing ones)`);
  }
  const shots = o.shots ?? 0;
  if (shots > task.maxShots) throw new MixtuneError(`--shots: ${taskName} has at most ${task.maxShots} few-shot examples, got ${shots}`);
  if (o.split !== undefined && taskName !== 'mbpp') throw new MixtuneError(`--split is only for mbpp`);
  const dataPath = resolve(o.data ?? task.defaultData());
  const all = task.load(dataPath, o.split);
  const items = applyLimit(all, o.limit);
  const maxNewTokens = o.maxNewTokens ?? task.defaultMaxNewTokens;
  const sandbox: SandboxOptions = { timeoutS: o.timeout ?? 10, memoryMB: o.memoryMb ?? 1024, netns: o.netns === false ? 'off' : 'auto' };
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
      const g = generateAnswer(model, tok, template, task.messages(it, { shots, system: o.system }, dataPath), { maxNewTokens, extraStopIds });
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

function intArg(min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer >= ${min}, got '${v}'`);
    return n;
  };
}

function numArg(min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < min) throw new InvalidArgumentError(`expected a number >= ${min}, got '${v}'`);
    return n;
  };
}

const DESCRIPTIONS: Record<TaskName, string> = {
  gsm8k: 'GSM8K accuracy: the number after "####" (else the last number) vs the reference',
  math: 'MATH(-500) accuracy: the last \\boxed{} answer, normalized (Hendrycks is_equiv + PRM800K-style rules) vs the reference',
  mbpp: 'MBPP pass@1: the generated function runs against the task\'s asserts in a sandboxed python3',
  humaneval: 'HumanEval pass@1: the generated function runs against check(entry_point) in a sandboxed python3',
};

/** The `eval` command with the gsm8k, math, mbpp and humaneval subcommands. */
export function buildEvalCommand(): Command {
  const evalCmd = new Command('eval')
    .description('Evaluate a model (or existing responses) on a benchmark; results are resumable (DIR/results.jsonl)')
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(`mixtune: ${str.replace(/^error: /, '').trimEnd()}\n`) });
  for (const name of ['gsm8k', 'math', 'mbpp', 'humaneval'] as const) {
    const task = TASKS[name];
    const cmd = evalCmd
      .command(name)
      .description(DESCRIPTIONS[name])
      .option('--model <path>', 'model to generate answers with (llama2.c .bin or Hugging Face folder); greedy, chat template')
      .option('--tokenizer <path>', 'tokenizer (default: the model\'s)')
      .option('--responses <file>', 'score existing completions instead: JSONL with "id" (or "task_id") and "response" (or "completion"); DIR/results.jsonl of an earlier run works')
      .option('--data <file>', `data file (default: ${task.defaultData()})`)
      .requiredOption('--out <dir>', 'output folder: results.jsonl (one line per item), run.json, summary.json')
      .option('--limit <n>', 'evaluate only the first n items (a larger --limit later extends the run)', intArg(1))
      .option('--max-new-tokens <n>', `maximum generated tokens per item (default ${task.defaultMaxNewTokens})`, intArg(1))
      .option('--system <text>', 'system prompt')
      .option('--no-progress', 'plain progress lines instead of a progress bar');
    if (task.maxShots > 0) cmd.option('--shots <k>', `few-shot examples as earlier chat turns (0-${task.maxShots})`, intArg(0), 0);
    if (task.kind === 'code') {
      cmd
        .option('--timeout <s>', 'time limit per program in seconds', numArg(0.1), 10)
        .option('--memory-mb <n>', 'address-space limit per program in MiB (0 = none)', intArg(0), 1024)
        .option('--jobs <n>', 'programs run in parallel (with --responses)', intArg(1), 1)
        .option('--no-netns', 'do not run programs in a network namespace (the socket guard stays)');
    }
    if (name === 'mbpp') cmd.addOption(new Option('--split <name>', 'MBPP split by task id').choices(Object.keys(MBPP_SPLITS)).default('test'));
    cmd.action(async (opts: EvalCliOptions) => {
      const s = await runEval(name, opts);
      const pct = s.score === null ? '-' : (100 * s.score).toFixed(2) + '%';
      process.stdout.write(
        `${name} ${s.metric}: ${pct} (${s.correct}/${s.scored})` +
          (s.missing_responses ? `, ${String(s.missing_responses)} items without a response` : '') +
          ` -> ${resolve(opts.out, 'summary.json')}\n`,
      );
      const ctx = (s.stopped_by as Record<string, number> | undefined)?.context ?? 0;
      if (ctx > 0) process.stderr.write(`mixtune: warning: ${ctx} prompt(s) reached the model's context length (stopped_by "context" in summary.json)\n`);
    });
  }
  return evalCmd;
}
