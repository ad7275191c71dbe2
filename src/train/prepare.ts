// From a train config to packed rows: read every dataset, attach system prompts, split off an
// eval set, encode each example (chat template + loss mask, injected by the caller), build the
// recipe's groups and pack them. Everything dropped, truncated or skipped is counted.
import type { TrainConfig, DatasetConfig } from './config.js';
import { readDataset, type Example } from '../data/readers.js';
import { causalGroup, packGroups, type Group, type PackStats, type Row } from '../data/pack.js';
import { Rng } from '../util/rng.js';
import { MixtuneError } from '../util/errors.js';

export interface EncodedExample {
  ids: number[];
  /** Aligned with ids: the token id where a loss applies, else IGNORE (-100). */
  labels: number[];
}

export type ExampleEncoder = (ex: Example) => EncodedExample;

export interface PrepareStats {
  examples: Record<string, number>; // per domain
  skippedBad: number;
  skipReasons: string[];
  evalExamples: number;
  noTargets: number;
  train: PackStats;
  eval: PackStats | null;
}

export interface Prepared {
  train: Row[];
  eval: Row[];
  stats: PrepareStats;
}

function readAll(list: DatasetConfig[], skipBad: boolean, rng: Rng): { examples: Example[]; skipped: number; reasons: string[] } {
  const examples: Example[] = [];
  let skipped = 0;
  const reasons: string[] = [];
  for (const d of list) {
    const r = readDataset(d.path, {
      format: d.format, domain: d.domain, skipBad,
      ...(d.columns ? { columns: d.columns } : {}),
      ...(d.limit !== undefined ? { limit: d.limit } : {}),
    });
    skipped += r.skipped;
    reasons.push(...r.skipReasons);
    for (const ex of r.examples) {
      if (ex.system === undefined && d.system !== undefined) {
        ex.system = typeof d.system === 'string' ? d.system : d.system[rng.int(d.system.length)]!;
      }
      examples.push(ex);
    }
  }
  return { examples, skipped, reasons: reasons.slice(0, 5) };
}

export function prepareRows(cfg: TrainConfig, encode: ExampleEncoder): Prepared {
  const rng = new Rng(cfg.seed ^ 0x5eed);
  const read = readAll(cfg.data.datasets, cfg.data.skip_bad, rng);
  let trainEx = read.examples;
  let evalEx: Example[] = [];
  let skipped = read.skipped;
  const reasons = [...read.reasons];
  if (cfg.data.eval_datasets?.length) {
    const ev = readAll(cfg.data.eval_datasets, cfg.data.skip_bad, rng);
    evalEx = ev.examples;
    skipped += ev.skipped;
    reasons.push(...ev.reasons);
  } else if (cfg.data.eval_split > 0) {
    const order = rng.shuffle(trainEx.map((_, i) => i));
    const nEval = Math.max(1, Math.round(trainEx.length * cfg.data.eval_split));
    const evalSet = new Set(order.slice(0, nEval));
    evalEx = trainEx.filter((_, i) => evalSet.has(i));
    trainEx = trainEx.filter((_, i) => !evalSet.has(i));
  }
  const perDomain: Record<string, number> = {};
  for (const ex of trainEx) perDomain[ex.domain] = (perDomain[ex.domain] ?? 0) + 1;

  let noTargets = 0;
  const toGroups = (list: Example[]): Group[] => {
    const groups: Group[] = [];
    for (const ex of list) {
      const enc = encode(ex);
      const g = causalGroup(enc.ids, enc.labels, ex.id);
      if (!g.targets.some((t) => t >= 0)) {
        noTargets++;
        continue;
      }
      groups.push(g);
    }
    return groups;
  };
  const pack = { overflow: cfg.data.overflow, pack: cfg.data.pack };
  const train = packGroups(toGroups(trainEx), cfg.data.max_len, pack);
  const evalPacked = evalEx.length ? packGroups(toGroups(evalEx), cfg.data.max_len, pack) : null;
  if (train.rows.length === 0) {
    throw new MixtuneError(`no training data left: ${trainEx.length} examples, ${train.stats.dropped} dropped (max_len ${cfg.data.max_len}), ${noTargets} without trained tokens`);
  }
  return {
    train: train.rows,
    eval: evalPacked?.rows ?? [],
    stats: {
      examples: perDomain, skippedBad: skipped, skipReasons: reasons.slice(0, 5), evalExamples: evalEx.length, noTargets,
      train: train.stats, eval: evalPacked?.stats ?? null,
    },
  };
}
