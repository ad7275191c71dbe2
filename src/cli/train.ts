// `mixtune train --config train.yaml`: turns flags into config overrides and runs the library's
// trainFromConfig (src/train/run.ts).
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadTrainConfig } from '../train/config.js';
import { trainFromConfig, type TrainSummary } from '../train/run.js';
import { MixtuneError } from '../util/errors.js';
import { trainMemoryEstimate } from '../train/setup.js';
import { describeEstimate, formatBytes, memoryBudget } from '../train/memory.js';
import type { TorchEngineOptions } from '../torch/engine.js';

export interface TrainCliOptions {
  config: string;
  set: string[];
  resume?: string | boolean;
  skipBad?: boolean;
  maxSteps?: number;
  outputDir?: string;
  seed?: number;
  stopAfter?: number;
  progress?: boolean;
  /** Rows saved by `mixtune prepare --out` (overrides data.prepared). */
  prepared?: string;
  /** Print the memory estimate and what is available, then exit. */
  dryRun?: boolean;
  force?: boolean;
  /** Replace a previous run in output_dir. */
  overwrite?: boolean;
  engine?: 'native' | 'torch';
  /** --nproc etc.: TorchEngineOptions as flags (all optional here). */
  nproc?: number;
  nnodes?: TorchEngineOptions['nnodes'];
  nodeRank?: TorchEngineOptions['nodeRank'];
  masterAddr?: TorchEngineOptions['masterAddr'];
  masterPort?: TorchEngineOptions['masterPort'];
  python?: TorchEngineOptions['python'];
  cpu?: boolean;
  fsdp?: boolean;
}

export async function runTrain(o: TrainCliOptions): Promise<TrainSummary | null> {
  if (!existsSync(o.config)) throw new MixtuneError(`${o.config}: config file not found`);
  const sets = [...o.set];
  if (o.skipBad) sets.push('data.skip_bad=true');
  if (o.maxSteps !== undefined) sets.push(`training.max_steps=${o.maxSteps}`);
  if (o.seed !== undefined) sets.push(`seed=${o.seed}`);
  const cfg = loadTrainConfig(o.config, sets);
  if (o.outputDir) cfg.output_dir = resolve(o.outputDir);
  if (o.dryRun) {
    const budget = memoryBudget();
    process.stdout.write(`${describeEstimate(trainMemoryEstimate(cfg))}\n` +
      `available: ${budget ? `${formatBytes(budget.bytes)} (${budget.limitedBy})` : 'unknown (no /proc)'}\n`);
    return null;
  }
  const torchFlags = ['nproc', 'nnodes', 'nodeRank', 'masterAddr', 'masterPort', 'python', 'cpu', 'fsdp'] as const;
  const given = torchFlags.filter((k) => o[k] !== undefined);
  if (o.engine !== 'torch' && given.length > 0) throw new MixtuneError(`--${given[0]!.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())} needs --engine torch`);
  if ((o.nnodes ?? 1) > 1 && o.masterAddr === undefined) throw new MixtuneError('--nnodes > 1 needs --master-addr (the address of the machine with --node-rank 0)');
  return trainFromConfig(cfg, {
    ...(o.engine ? { engine: o.engine } : {}),
    ...(o.engine === 'torch' ? {
      torch: {
        nproc: o.nproc ?? 1,
        ...(o.nnodes !== undefined ? { nnodes: o.nnodes } : {}),
        ...(o.nodeRank !== undefined ? { nodeRank: o.nodeRank } : {}),
        ...(o.masterAddr !== undefined ? { masterAddr: o.masterAddr } : {}),
        ...(o.masterPort !== undefined ? { masterPort: o.masterPort } : {}),
        ...(o.python !== undefined ? { python: o.python } : {}),
        ...(o.cpu ? { cpu: true } : {}),
        ...(o.fsdp ? { fsdp: true } : {}),
      },
    } : {}),
    command: `mixtune train --config ${o.config}${o.set.map((kv) => ` --set ${kv}`).join('')}${o.outputDir ? ` --output-dir ${o.outputDir}` : ''}`,
    ...(o.force ? { force: true } : {}),
    ...(o.overwrite ? { overwrite: true } : {}),
    ...(o.resume === undefined || o.resume === false ? {} : { resume: o.resume === true ? 'latest' : o.resume }),
    ...(o.prepared !== undefined ? { prepared: o.prepared } : {}),
    ...(o.stopAfter !== undefined ? { stopAfter: o.stopAfter } : {}),
    ...(o.progress === false ? { progress: false } : {}),
  });
}
