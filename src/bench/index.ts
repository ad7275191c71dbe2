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

/** The key=value parameters each benchmark takes, with their defaults (for `bench --help`). */
export const BENCH_KEYS: Record<string, string> = {
  peak: 'seconds=1.5',
  gemm: 'm=2048 k=512,1408,8192 n=512,1408,8192 trans=nn,nt,tn,tt seconds=0.4 beta=0 peakSeconds=1.5 localPeakSeconds=0.1 ' +
    'skinny=1|0|compare precision=fp32|bf16 (then operands=f32|bf16|packed compare=1)',
  attention: 'b=4 t=512 heads=8 kv_heads=8 d=64 reps=5 decode_t=2048; layout=causal|packed|miso (then n=4 groups=8 miso_groups=1 seed=1 w=uniform|fid|vanilla)',
  train: 'vocab=8192 dim=512 layers=8 heads=8 kv_heads=8 ffn=1408 seq=512 batch=4 steps=6 peer=auto|0|1 force=0|1 verbose=0|1|cpu (per-op wall or CPU times) checkpointing=0|1 lora=R tied=0|1 bias=0|1 precision=fp32|bf16 (bf16: compare=1 also times fp32 steps in the same run, ratio_vs_fp32; bf16_ops=a,b: the products on bf16 operands, of linear_forward, linear_input_grad, linear_weight_grad, attention, lm_head); ' +
    'recipe=sft|moi|miso-para|miso-succ (then inputs=4 input_len=48 output_len=96 seed=1)',
  generate: 'tokens=256 vocab=8192 dim=512 layers=8 heads=8 kv_heads=8 ffn=1408 seq=512',
};

export function benchNames(): string[] {
  return Object.keys(benches);
}

export async function runBench(name: string, params: Record<string, string>): Promise<Record<string, unknown>> {
  const b = benches[name];
  if (!b) throw new MixtuneError(`unknown benchmark '${name}' (known: ${benchNames().join(', ')})`);
  return await b(params);
}
