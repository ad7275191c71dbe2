// `mixtune study <name>`: small-scale reproductions of the papers' comparisons. `buildStudyCommand`
// returns the parent command; each study registers itself as a subcommand (`moi` here; `miso`
// is added with its own register function).
import { Command, InvalidArgumentError } from 'commander';
import { intArg, listArg, numArg } from './args.js';
import { MOI_DOMAINS } from '../study/moi-data.js';
import { MAX_EVAL_PROMPTS, MOI_STUDY_CONFIGS, MOI_STUDY_DEFAULTS, moiCurveTable, moiPromptTable, moiTable, nMixConfigs, runMoiStudy } from '../study/moi.js';
import { MixtuneError } from '../util/errors.js';
import { MISO_STUDY_CONFIGS, MISO_STUDY_DEFAULTS, misoCostTable, misoPerKTable, misoTable, runMisoStudy } from '../study/miso.js';

export function buildStudyCommand(): Command {
  // Settings of the parent program are not inherited by an added command: repeat them here so
  // usage errors return an exit code instead of exiting the process.
  return new Command('study')
    .description('Small-scale reproductions of the MoI / MISO comparisons (results JSON, table, SVG plot)')
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(`mixtune: ${str.replace(/^error: /, '').trimEnd()}\n`) });
}

/** `mixtune study moi`. */
export function registerMoiStudy(study: Command): Command {
  const d = MOI_STUDY_DEFAULTS;
  study
    .command('moi')
    .description(`MoI study: fine-tune stories260K on four synthetic domains (${MOI_DOMAINS.join(', ')}) with each configuration, evaluate every domain under "You are a helpful assistant."`)
    .option('--out <dir>', 'output folder (results.json, moi.svg, table.md, data/, runs/)', './mixtune-study-moi')
    .option('--steps <n>', 'optimizer steps per configuration', intArg(1), d.steps)
    .option('--seeds <n>', 'training seeds 0..n-1 (mean ± std when n > 1)', intArg(1), d.seeds)
    .option('--n-train <n>', 'training examples per domain (math has at most 210 beside a 50-item test set)', intArg(1), d.nTrain)
    .option('--n-test <n>', 'test examples per domain', intArg(1), d.nTest)
    .option('--configs <list>', `comma-separated configurations (${Object.keys(MOI_STUDY_CONFIGS).join(', ')}; default ${d.configs.join(',')})`, listArg(MOI_STUDY_CONFIGS), d.configs)
    .option('--n-mix <list>', 'chunk sizes to compare (2, 4, 8): adds moi-nmix2 / moi (4) / moi-nmix8, plus moi-full and moi-isolated, to --configs', nMixList)
    .option('--eval-prompts <k>', `also evaluate every configuration under K held-out system prompts per domain (0..${MAX_EVAL_PROMPTS}; 0: off)`, intArg(0), d.evalPrompts)
    .option('--curve-every <n>', 'learning curves: evaluate a checkpoint every N steps (0: off)', intArg(0), d.curveEvery)
    .option('--curve-configs <list>', 'configurations with learning curves', listArg(MOI_STUDY_CONFIGS), d.curveConfigs)
    .option('--batch <n>', 'rows per optimizer step', intArg(1), d.batch)
    .option('--max-len <n>', 'row length in tokens', intArg(16), d.maxLen)
    .option('--lr <x>', 'peak learning rate (cosine, 5% warmup)', numArg(0, Infinity, { exclusiveMin: true }), d.lr)
    .option('--data-seed <n>', 'seed of the synthetic data and its split', intArg(0), d.dataSeed)
    .option('--fresh', 'retrain runs that an earlier identical invocation finished (default: reuse their result.json)')
    .option('--model <path>', 'model to fine-tune: stories260K (the embedded model, default), a llama2.c .bin or an HF model folder')
    .option('--tokenizer <path>', "its tokenizer (default: the model's own)")
    .option('--no-progress', 'plain log lines instead of progress bars')
    .action(async (opts) => {
      const t0 = performance.now();
      if (opts.evalPrompts > MAX_EVAL_PROMPTS) throw new MixtuneError(`--eval-prompts: at most ${MAX_EVAL_PROMPTS} held-out prompts per domain, got ${opts.evalPrompts}`);
      const configs: string[] = opts.nMix ? [...new Set([...(opts.configs as string[]), ...nMixConfigs(opts.nMix as number[]), 'moi-full', 'moi-isolated'])] : opts.configs;
      const res = await runMoiStudy({
        out: opts.out, steps: opts.steps, seeds: opts.seeds, nTrain: opts.nTrain, nTest: opts.nTest, configs,
        evalPrompts: opts.evalPrompts, curveEvery: opts.curveEvery, curveConfigs: opts.curveConfigs,
        batch: opts.batch, maxLen: opts.maxLen, lr: opts.lr, dataSeed: opts.dataSeed, ...(opts.fresh ? { fresh: true } : {}),
        ...(opts.model ? { model: opts.model } : {}), ...(opts.tokenizer ? { tokenizer: opts.tokenizer } : {}),
        ...(opts.progress === false ? { progress: false } : {}),
      });
      process.stdout.write([moiTable(res), moiPromptTable(res), moiCurveTable(res)].filter((t) => t).join('\n\n') + '\n');
      process.stderr.write(`study moi: ${((performance.now() - t0) / 1000).toFixed(1)} s; results in ${opts.out}/results.json, plot ${opts.out}/moi.svg\n`);
    });
  return study;
}

function nMixList(v: string): number[] {
  const sizes = v.split(',').map((x) => x.trim()).filter((x) => x);
  const out = sizes.map((x) => {
    const n = Number(x);
    if (!Number.isInteger(n) || ![2, 4, 8].includes(n)) throw new InvalidArgumentError(`chunk sizes among 2, 4, 8, got "${x}"`);
    return n;
  });
  if (!out.length) throw new InvalidArgumentError('no chunk size given');
  return out;
}

/** `mixtune study miso`. */
export function registerMisoStudy(study: Command): Command {
  const d = MISO_STUDY_DEFAULTS;
  study
    .command('miso')
    .description('MISO study: fine-tune stories260K on synthetic multi-constraint data with sft and the MISO recipes and ablations, score held-out prompts with the IFEval checker (mean ± std over seeds)')
    .option('--out <dir>', 'output folder (results.json, miso.svg, table.md, data/, runs/)', './mixtune-study-miso')
    .option('--steps <n>', 'optimizer steps per configuration', intArg(1), d.steps)
    .option('--seeds <n>', 'seeds 0..n-1 (training order and, unless --data-seed, the data)', intArg(1), d.seeds)
    .option('--n-train <n>', 'training examples per data seed', intArg(1), d.nTrain)
    .option('--n-test <n>', 'held-out test prompts per data seed', intArg(1), d.nTest)
    .option('--configs <list>', `comma-separated configurations (${Object.keys(MISO_STUDY_CONFIGS).join(', ')})`, listArg(MISO_STUDY_CONFIGS), d.configs)
    .option('--batch <n>', 'examples per optimizer step (one example per row)', intArg(1), d.batch)
    .option('--lr <x>', 'peak learning rate (cosine, 5% warmup)', numArg(0, Infinity, { exclusiveMin: true }), d.lr)
    .option('--max-new-tokens <n>', 'generation limit per test prompt', intArg(1), d.maxNewTokens)
    .option('--data-seed <n>', 'one data seed for every training seed (default: seed s uses the data of seed s)', intArg(0))
    .option('--budget-seconds <s>', 'also train the --budget-configs for the steps that fit S seconds at their measured rate (0: off)', numArg(0), d.budgetSeconds)
    .option('--budget-configs <list>', 'configurations of the time-budget comparison', listArg(MISO_STUDY_CONFIGS), d.budgetConfigs)
    .option('--fresh', 'retrain runs that an earlier identical invocation finished (default: reuse their result.json)')
    .option('--model <path>', 'model to fine-tune: stories260K (the embedded model, default), a llama2.c .bin or an HF model folder')
    .option('--tokenizer <path>', "its tokenizer (default: the model's own)")
    .option('--no-progress', 'plain log lines instead of progress bars')
    .action(async (opts) => {
      const t0 = performance.now();
      const res = await runMisoStudy({
        out: opts.out, steps: opts.steps, seeds: opts.seeds, nTrain: opts.nTrain, nTest: opts.nTest, configs: opts.configs,
        batch: opts.batch, lr: opts.lr, maxNewTokens: opts.maxNewTokens, budgetSeconds: opts.budgetSeconds, budgetConfigs: opts.budgetConfigs,
        ...(opts.dataSeed !== undefined ? { dataSeed: opts.dataSeed } : {}), ...(opts.fresh ? { fresh: true } : {}),
        ...(opts.model ? { model: opts.model } : {}), ...(opts.tokenizer ? { tokenizer: opts.tokenizer } : {}),
        ...(opts.progress === false ? { progress: false } : {}),
      });
      process.stdout.write(`${misoTable(res)}\n\ninstruction-level strict accuracy by constraints per test prompt:\n${misoPerKTable(res)}\n\ncost per point of inst-strict accuracy over the base model:\n${misoCostTable(res)}\n`);
      process.stderr.write(`study miso: ${((performance.now() - t0) / 1000).toFixed(1)} s; results in ${opts.out}/results.json, plot ${opts.out}/miso.svg\n`);
    });
  return study;
}
