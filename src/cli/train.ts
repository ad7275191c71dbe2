// `mixtune train --config train.yaml`: turns flags into config overrides and runs the library's
// trainFromConfig (src/train/run.ts).
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadTrainConfig } from '../train/config.js';
import { trainFromConfig, type TrainSummary } from '../train/run.js';
import { MixtuneError } from '../util/errors.js';

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
}

export function runTrain(o: TrainCliOptions): TrainSummary {
  if (!existsSync(o.config)) throw new MixtuneError(`${o.config}: config file not found`);
  const sets = [...o.set];
  if (o.skipBad) sets.push('data.skip_bad=true');
  if (o.maxSteps !== undefined) sets.push(`training.max_steps=${o.maxSteps}`);
  if (o.seed !== undefined) sets.push(`seed=${o.seed}`);
  const cfg = loadTrainConfig(o.config, sets);
  if (o.outputDir) cfg.output_dir = resolve(o.outputDir);
  return trainFromConfig(cfg, {
    ...(o.resume === undefined || o.resume === false ? {} : { resume: o.resume === true ? 'latest' : o.resume }),
    ...(o.prepared !== undefined ? { prepared: o.prepared } : {}),
    ...(o.stopAfter !== undefined ? { stopAfter: o.stopAfter } : {}),
    ...(o.progress === false ? { progress: false } : {}),
  });
}
