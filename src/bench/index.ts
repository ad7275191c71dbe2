// The registry behind `mixtune bench NAME`: each benchmark returns one object, printed as one JSON line.
import { MixtuneError } from '../util/errors.js';
import { benchPeak } from './peak.js';
import { benchGemm } from './gemm.js';
import { benchAttention } from './attention.js';
import { benchTrain } from './train.js';
import { benchGenerate } from './generate.js';

type Bench = (params: Record<string, string>) => Record<string, unknown> | Promise<Record<string, unknown>>;

const benches: Record<string, Bench> = {
  peak: benchPeak,
  gemm: benchGemm,
  attention: benchAttention,
  train: benchTrain,
  generate: benchGenerate,
};

export function benchNames(): string[] {
  return Object.keys(benches);
}

export async function runBench(name: string, params: Record<string, string>): Promise<Record<string, unknown>> {
  const b = benches[name];
  if (!b) throw new MixtuneError(`unknown benchmark '${name}' (known: ${benchNames().join(', ')})`);
  return await b(params);
}
