// `mixtune eval ifeval`: registered on the `eval` parent command by registerIfevalCommand.
import type { Command } from 'commander';
import { runIfevalEval } from '../eval/ifeval/run.js';
import { intArg } from './args.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { sharedDir } from '../util/paths.js';
import { MixtuneError } from '../util/errors.js';

/** The IFEval input of our development layout, when it is there; else a clear error. */
function defaultIfevalInput(): string {
  const p = join(sharedDir(), 'data', 'ifeval', 'input_data.jsonl');
  if (!existsSync(p)) throw new MixtuneError('eval ifeval: pass --data FILE (IFEval input_data.jsonl; no default copy is installed)');
  return p;
}

export const IFEVAL_HELP_EPILOG = `
Examples:
  mixtune eval ifeval --data input_data.jsonl --responses responses.jsonl --out results/
  mixtune eval ifeval --model ./model --data input_data.jsonl --out results/ --max-new-tokens 1280
  mixtune eval ifeval --model ./model --flat-input ifeval_flat.jsonl --out results-flat/

Writes DIR/eval_results_strict.jsonl and DIR/eval_results_loose.jsonl (the reference format),
DIR/summary.json, and (with --model) DIR/responses.jsonl, appended per generated item; a rerun
skips prompts that already have a response there.`;

/** Adds the `ifeval` subcommand to the `eval` parent command. */
export function registerIfevalCommand(evalCmd: Command): void {
  evalCmd
    .command('ifeval')
    .description('IFEval: check responses against verifiable instructions (strict and loose; prompt/instruction-level accuracy per id and category)')
    .option('--data <file>', 'IFEval input_data.jsonl: {key, prompt, instruction_id_list, kwargs, base?} per line (default: the IFEval data in ../shared/data/ifeval when present)')
    .option('--input <file>', 'the same as --data')
    .option('--responses <file>', 'responses to score: {prompt, response} per line, joined to the inputs by exact prompt text')
    .option('--model <path>', 'generate the responses with this model first (chat template, greedy) into DIR/responses.jsonl')
    .option('--tokenizer <path>', "tokenizer for --model (default: the model's)")
    .option('--system <text>', 'system prompt for generation')
    .option('--max-new-tokens <n>', 'generation length limit', intArg(1), 1280)
    .requiredOption('--out <dir>', 'output folder')
    .option('--limit <n>', 'evaluate only the first N prompts', intArg(1))
    .option('--flatten', 'score one prompt per instruction, rebuilt from structured data (records with a `base` instruction); IFEval itself needs --flat-input', false)
    .option('--flat-input <file>', 'user-rewritten single-instruction prompts: {prompt, instruction_id, kwargs, source_key?} per line (replaces --input)')
    .option('--no-progress', 'plain log lines instead of a progress bar')
    .addHelpText('after', IFEVAL_HELP_EPILOG)
    .action(async (opts: {
      input?: string; data?: string; responses?: string; model?: string; tokenizer?: string; system?: string; maxNewTokens: number;
      out: string; limit?: number; flatten: boolean; flatInput?: string; progress: boolean;
    }) => {
      const input = opts.data ?? opts.input ?? (opts.flatInput ? undefined : defaultIfevalInput());
      await runIfevalEval({
        ...opts,
        ...(input !== undefined ? { input } : {}),
        // --no-progress forces plain lines; otherwise a bar only on a TTY
        progress: opts.progress === false ? false : undefined,
      });
    });
}
