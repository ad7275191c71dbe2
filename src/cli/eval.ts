// `mixtune eval gsm8k | math | mbpp | humaneval`: flags for the benchmark runs of src/eval/run-task.ts.
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { intArg, numArg } from './args.js';
import { MBPP_SPLITS, TASKS, type TaskName } from '../eval/tasks.js';
import { runEval, type EvalTaskOptions } from '../eval/run-task.js';

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
      .option('--prompt-template <text>', 'the user turn as a template over the item\'s fields, e.g. "Question: {question}\\nAnswer:" (default: the task\'s own prompt)')
      .option('--no-progress', 'plain progress lines instead of a progress bar');
    if (task.maxShots > 0) cmd.option('--shots <k>', `few-shot examples as earlier chat turns (0-${task.maxShots})`, intArg(0), 0);
    if (task.kind === 'code') {
      cmd
        .option('--timeout <s>', 'time limit per program in seconds', numArg(0.1), 10)
        .option('--memory-mb <n>', 'address-space limit per program in MiB (0 = none)', intArg(0), 1024)
        .option('--jobs <n>', 'programs run in parallel (with --responses)', intArg(1), 1)
        .option('--no-netns', 'unsafe mode only: do not run programs in a network namespace (the socket guard stays)')
        .option('--unsafe-no-sandbox', 'run generated code without the bubblewrap sandbox when bwrap is unavailable (Python-level guards only; the summary says so)');
    }
    if (name === 'mbpp') cmd.addOption(new Option('--split <name>', 'MBPP split by task id').choices(Object.keys(MBPP_SPLITS)).default('test'));
    cmd.action(async (opts: EvalTaskOptions) => {
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
