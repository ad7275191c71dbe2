// The `mixtune` command line: parses flags and calls the library. Every user error ends as one
// line on stderr ("mixtune: <what is wrong>") and a non-zero exit code, never a stack trace
// (set MIXTUNE_DEBUG=1 to see stacks).
import { Command, CommanderError, Option } from 'commander';
import { collect, intArg, numArg } from './args.js';
import { MixtuneError, outOfMemoryError } from '../util/errors.js';
import { runGenerate } from './generate.js';
import { runScore } from './score.js';
import { runTrain } from './train.js';
import { runConvert } from './convert.js';
import { runPrepare } from './prepare.js';
import { runBench, benchNames, BENCH_KEYS } from '../bench/index.js';
import { BF16_OPS } from '../tensor/bf16-weights.js';
import { buildEvalCommand } from './eval.js';
import { registerIfevalCommand } from './eval-ifeval.js';
import { runSynthConstraints } from './synth.js';
import { runDemoCli, DEMO_DEFAULTS } from './demo.js';
import { buildStudyCommand, registerMisoStudy, registerMoiStudy } from './study.js';
import { buildExportCommand } from './export.js';
import { runServe } from './serve.js';
import { runUi } from './ui.js';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('mixtune')
    .description('Fine-tune Llama-family LLMs on the CPU with the MoI and MISO recipes')
    .version('0.1.0')
    .exitOverride()
    .showHelpAfterError(false)
    .configureOutput({
      outputError: (str, write) => write(`mixtune: ${str.replace(/^error: /, '').trimEnd()}\n`),
    });

  program
    .command('generate')
    .description('Generate a continuation of a prompt (KV cache; greedy or sampled)')
    .requiredOption('--model <path>', 'model: a llama2.c .bin checkpoint, a Hugging Face model folder, or stories260K (the embedded model)')
    .option('--tokenizer <path>', 'tokenizer: llama2.c tokenizer.bin or a folder (default: the model folder\'s tokenizer, or tokenizer.bin beside a .bin)')
    .option('--prompt <text>', 'prompt text (BOS is prepended)', '')
    .option('--temperature <t>', 'sampling temperature; 0 = greedy', numArg(0), 1.0)
    .option('--top-k <k>', 'sample only from the k most likely tokens (0 = off)', intArg(0), 0)
    .option('--top-p <p>', 'nucleus sampling mass (1 = off)', numArg(0, 1), 0.9)
    .option('--seed <n>', 'random seed for sampling', intArg(0))
    .option('--max-new-tokens <n>', 'maximum number of tokens to generate', intArg(1), 256)
    .option('--echo', 'print the prompt before the continuation (as llama2.c does)', false)
    .option('--chat', "render the prompt as a user turn with the model's chat template (the built-in plain one for llama2.c models)", false)
    .option('--system <text>', 'system prompt for --chat')
    .option('--no-cache', 'recompute the whole sequence at every step instead of using the KV cache')
    .option('--no-stop', 'do not stop at the end-of-sequence token')
    .option('--input <text>', 'MISO generation: an input (repeatable); one output is decoded against all inputs, and --prompt (or the chat header with --chat) starts the output', collect, [] as string[])
    .addOption(new Option('--weighting <w>', 'MISO: how the per-input attention results are mixed').choices(['uniform', 'fid', 'vanilla']).default('uniform'))
    .addOption(new Option('--positions <mode>', 'MISO: para = every input from position 0, the output after the longest; succ = successive positions').choices(['para', 'succ']).default('para'))
    .option('--force', 'generate even when the memory estimate exceeds the memory available')
    .action(async (opts) => {
      await runGenerate(opts);
    });

  program
    .command('score')
    .description('Log-probabilities of an output given one or several inputs (a MISO group); log p(output[j] | inputs, output[<j]) for j >= 1')
    .requiredOption('--model <path>', 'model: a llama2.c .bin checkpoint, a Hugging Face model folder, or stories260K (the embedded model)')
    .option('--tokenizer <path>', 'tokenizer (needed for text; default: the model\'s)')
    .option('--input <text>', 'an input, encoded as BOS + text (repeatable)', collect, [] as string[])
    .option('--input-ids <ids>', 'an input as comma-separated token ids, used exactly (repeatable)', collect, [] as string[])
    .option('--output <text>', 'the output text (no BOS); its first token is given, the rest are scored')
    .option('--output-ids <ids>', 'the output as comma-separated token ids, used exactly')
    .addOption(new Option('--positions <mode>', 'para = every input from position 0, the output after the longest; succ = successive positions').choices(['para', 'succ']).default('para'))
    .addOption(new Option('--weighting <w>', 'how the per-input attention results are mixed').choices(['uniform', 'fid', 'vanilla']).default('uniform'))
    .option('--chat', 'render each input as a user turn and the output as the assistant turn with the chat template (the header starts the output)', false)
    .option('--system <text>', 'system prompt for --chat')
    .option('--json', 'print {"logprobs": [...], "total": x, ...} instead of a table', false)
    .action(async (opts) => {
      await runScore(opts);
    });

  program
    .command('convert')
    .description('Convert a llama2.c checkpoint and its tokenizer.bin into a Hugging Face model folder')
    .requiredOption('--from <path>', 'llama2.c .bin checkpoint, or stories260K (the embedded model)')
    .option('--tokenizer <path>', 'llama2.c tokenizer.bin (default: tokenizer.bin beside the checkpoint; the embedded model\'s own)')
    .requiredOption('--to <dir>', 'output folder (must not exist or be empty, unless --overwrite)')
    .option('--dtype <dtype>', 'weight storage dtype: f32 | bf16', 'f32')
    .option('--overwrite', 'replace an existing non-empty output folder', false)
    .action(async (opts) => {
      await runConvert(opts);
    });

  program
    .command('train')
    .description('Fine-tune a model as described by a train.yaml config (full or LoRA), with checkpoints and resume')
    .requiredOption('--config <path>', 'train.yaml')
    .option('--set <key=value>', 'override a config key (repeatable), e.g. --set training.lr=1e-4', collect, [] as string[])
    .option('--resume [checkpoint]', 'resume from the latest checkpoint in output_dir, or from the given checkpoint folder')
    .option('--skip-bad', 'skip malformed data records (counted) instead of stopping')
    .option('--max-steps <n>', 'override training.max_steps', intArg(1))
    .option('--output-dir <dir>', 'override output_dir')
    .option('--seed <n>', 'override seed', intArg(0))
    .option('--stop-after <n>', 'stop (with a checkpoint) after optimizer step n, e.g. to fit a time limit', intArg(1))
    .option('--no-progress', 'plain log lines instead of a progress bar')
    .option('--prepared <file>', 'train on rows saved by mixtune prepare --out (instead of data.prepared / preparing)')
    .option('--dry-run', 'print the estimated peak memory and what is available, then exit')
    .option('--force', 'train even when the memory estimate exceeds the memory available')
    .option('--overwrite', 'replace the run already in output_dir (finished or not) instead of refusing')
    .addOption(new Option('--engine <engine>', 'native: this process\'s CPU kernels; torch: PyTorch (python/mixtune_torch) on CPUs or GPUs, torchrun for several processes').choices(['native', 'torch']).default('native'))
    .option('--nproc <n>', 'torch engine: processes per machine (torchrun --nproc_per_node; one per GPU)', intArg(1))
    .option('--nnodes <n>', 'torch engine: machines taking part (run the same command on each, with its --node-rank)', intArg(1))
    .option('--node-rank <r>', 'torch engine: this machine\'s rank among --nnodes', intArg(0))
    .option('--master-addr <addr>', 'torch engine: address of the machine with --node-rank 0')
    .option('--master-port <port>', 'torch engine: its port (default 29500)', intArg(1))
    .option('--python <path>', 'torch engine: the Python that has PyTorch >= 1.13 (default: $MIXTUNE_PYTHON, python3, /usr/bin/python3)')
    .option('--cpu', 'torch engine: train on the CPU even when CUDA is available')
    .option('--fsdp', 'torch engine: full fine-tuning with the model sharded across the GPUs (FSDP; CUDA, PyTorch >= 2.0, 2+ processes; untested until run on GPUs)')
    .action(async (opts) => {
      const s = await runTrain(opts);
      // interrupted by Ctrl-C / SIGTERM: a checkpoint was written; the conventional exit code
      if (s?.interrupted) process.exitCode = 130;
    });

  program
    .command('prepare')
    .description('Prepare the training rows of a train.yaml (recipe, packing): print statistics, render rows, save them for train --prepared')
    .requiredOption('--config <path>', 'train.yaml')
    .option('--set <key=value>', 'override a config key (repeatable)', collect, [] as string[])
    .option('--show <n>', 'render the first n training rows (groups, parts, positions, loss tokens)', intArg(0), 0)
    .option('--tokens', 'render rows one token per line', false)
    .option('--out <file>', 'save the prepared rows (JSON lines) for mixtune train --prepared')
    .option('--json', 'print the statistics as one JSON line', false)
    .option('--skip-bad', 'skip malformed data records (counted) instead of stopping')
    .action((opts) => {
      runPrepare(opts);
    });

  const synth = program.command('synth').description('Synthesize training and test data');
  synth
    .command('constraints')
    .description('Multi-constraint instructions (1-4 IFEval-style verifiable constraints) with responses that satisfy them, verified by the IFEval checker')
    .requiredOption('--n <n>', 'number of examples', intArg(0))
    .option('--seed <n>', 'random seed', intArg(0), 0)
    .requiredOption('--out <file>', 'output JSON lines file')
    .addOption(new Option('--split <split>', 'train: 1-3 constraints; test: unseen combinations of 2-4 constraints').choices(['train', 'test']).default('train'))
    .option('--max-constraints <k>', 'most constraints per prompt (train <= 3, test <= 4)', intArg(1))
    .option('--test-out <file>', 'also write a held-out test split to this file')
    .option('--n-test <n>', 'test examples for --test-out (default n/4)', intArg(1))
    .action((opts) => {
      runSynthConstraints(opts);
    });

  program
    .command('demo')
    .description('Fine-tune the embedded stories260K model with sft and miso-para on synthetic constraint data and compare them with the IFEval checker')
    .option('--out <dir>', 'output folder', DEMO_DEFAULTS.out)
    .option('--recipes <list>', 'comma list of recipes: sft, miso-para, miso-augment-only, miso-succ', DEMO_DEFAULTS.recipes)
    .option('--steps <n>', 'optimizer steps per recipe', intArg(1), DEMO_DEFAULTS.steps)
    .option('--seed <n>', 'seed (data, initialization order, shuffling)', intArg(0), DEMO_DEFAULTS.seed)
    .option('--n-train <n>', 'synthetic training examples', intArg(1), DEMO_DEFAULTS.nTrain)
    .option('--n-test <n>', 'held-out test examples', intArg(1), DEMO_DEFAULTS.nTest)
    .option('--max-new-tokens <n>', 'generation length limit during evaluation', intArg(1), DEMO_DEFAULTS.maxNewTokens)
    .option('--batch <n>', 'examples per optimizer step', intArg(1), DEMO_DEFAULTS.batch)
    .option('--lr <x>', 'peak learning rate (cosine schedule)', numArg(0, Infinity, { exclusiveMin: true }), DEMO_DEFAULTS.lr)
    .addOption(new Option('--precision <p>', 'training precision: fp32, or bf16 GEMMs and attention products (fp32 master weights; needs AVX512-BF16 or AMX-BF16)').choices(['fp32', 'bf16']))
    .option('--bf16-ops <list>', `with --precision bf16: comma list of the products on bf16 operands (training.bf16_ops: ${BF16_OPS.join(', ')}; default all)`)
    .option('--model <path>', 'model to fine-tune: stories260K (the embedded model), a llama2.c .bin or an HF model folder', 'stories260K')
    .option('--tokenizer <path>', "its tokenizer (default: the model's own)")
    .option('--no-progress', 'plain log lines instead of progress bars')
    .action(async (opts) => {
      await runDemoCli(opts);
    });

  program
    .command('bench')
    .description(`Run a benchmark and print one JSON line (${benchNames().join(', ')})`)
    .argument('<name>', `benchmark: ${benchNames().join(' | ')}`)
    .argument('[params...]', 'key=value overrides, e.g. dim=256 layers=4')
    .addHelpText('after', `\nKeys (defaults) per benchmark:\n${Object.entries(BENCH_KEYS).map(([n, k]) => `  ${n.padEnd(10)} ${k}`).join('\n')}`)
    .action(async (name: string, params: string[]) => {
      const kv: Record<string, string> = {};
      for (const p of params) {
        const eq = p.indexOf('=');
        if (eq <= 0) throw new MixtuneError(`bench ${name}: parameter '${p}' is not key=value`);
        kv[p.slice(0, eq)] = p.slice(eq + 1);
      }
      const result = await runBench(name, kv);
      process.stdout.write(JSON.stringify(result) + '\n');
    });

  const evalCmd = buildEvalCommand();
  registerIfevalCommand(evalCmd);
  program.addCommand(evalCmd);

  program.addCommand(registerMisoStudy(registerMoiStudy(buildStudyCommand())));

  program.addCommand(buildExportCommand());

  program
    .command('serve')
    .description('Serve a model over an OpenAI-compatible HTTP API (chat completions, completions, MISO generation), one request at a time')
    .requiredOption('--model <path>', 'model: a llama2.c .bin checkpoint, a Hugging Face model folder (e.g. a run\'s final/), or stories260K')
    .option('--tokenizer <path>', "tokenizer (default: the model's own)")
    .option('--host <addr>', 'address to listen on (other than loopback, use --api-key)', '127.0.0.1')
    .option('--port <n>', 'port (0 = any free port; the address is printed)', intArg(0), 8080)
    .option('--max-queue <n>', 'requests that may wait behind the running one; more are answered 429', intArg(0), 64)
    .option('--api-key <key>', 'require "Authorization: Bearer <key>" on /v1 requests (default: $MIXTUNE_API_KEY if set)')
    .option('--name <id>', "the model id clients see (default: the model's file or folder name)")
    .option('--context <n>', "longest prompt + completion per request, in tokens (default: the model's context)", intArg(2))
    .option('--max-inputs <n>', 'most MISO inputs per request ("mixtune": {"inputs": [...]})', intArg(1), 8)
    .option('--quiet', 'no request log on stderr')
    .option('--force', 'serve even when the memory estimate exceeds the memory available')
    .action(async (opts) => {
      await runServe(opts);
    });

  program
    .command('ui')
    .description('A local web page: runs with live loss curves, demo / study results, prepared rows with their attention pattern, chat with a model')
    .option('--runs <dir>', 'a folder to find runs in: train output dirs, demo and study folders (repeatable; default: the current folder)', collect, [] as string[])
    .option('--config <file>', 'a train.yaml whose prepared rows the Rows view shows (repeatable)', collect, [] as string[])
    .option('--model <path>', 'a model for the Chat view (stories260K, a llama2.c .bin or an HF folder); runs\' final/ folders can be chosen too')
    .option('--tokenizer <path>', "its tokenizer (default: the model's own)")
    .option('--host <addr>', 'address to listen on (anything but loopback exposes the run folders)', '127.0.0.1')
    .option('--port <n>', 'port (0 = any free port; the address is printed)', intArg(0), 7860)
    .option('--max-inputs <n>', 'most MISO inputs per chat request', intArg(1), 8)
    .option('--quiet', 'no request log on stderr')
    .action(async (opts) => {
      await runUi(opts);
    });

  polishHelp(program);
  return program;
}

/**
 * Help texts as users write values: required options say so, list defaults read "none" / "a,b"
 * instead of JSON arrays. Applied to every command, so new commands get it too.
 */
export function polishHelp(cmd: Command): void {
  for (const opt of cmd.options) {
    if (opt.mandatory && !opt.description.endsWith('(required)')) opt.description += ' (required)';
    if (Array.isArray(opt.defaultValue) && opt.defaultValueDescription === undefined) {
      opt.defaultValueDescription = opt.defaultValue.length ? opt.defaultValue.join(',') : 'none';
    } else if (typeof opt.defaultValue === 'string' && opt.defaultValueDescription === undefined) {
      opt.defaultValueDescription = opt.defaultValue === '' ? '""' : opt.defaultValue;
    }
  }
  for (const sub of cmd.commands) polishHelp(sub);
}

/** Runs the CLI; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander already printed its message (help and version exit with code 0).
      return err.exitCode === 0 ? 0 : 2;
    }
    if (process.env.MIXTUNE_DEBUG) console.error(err);
    const e = outOfMemoryError(err, `running mixtune ${argv.filter((a) => !a.startsWith('-'))[0] ?? ''}`.trimEnd());
    const msg = e instanceof Error ? e.message : String(e);
    process.stderr.write(`mixtune: ${msg.split('\n')[0]}\n`);
    return 1;
  }
}
