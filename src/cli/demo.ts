// `mixtune demo`: the end-to-end demo on the embedded stories260K model (see src/demo/run.ts).
import { parseBf16Ops } from '../tensor/bf16-weights.js';
import { runDemo, parseRecipes, formatTable, DEMO_DEFAULTS, type DemoResults } from '../demo/run.js';

export interface DemoCliOptions {
  out: string;
  recipes: string;
  steps: number;
  seed: number;
  nTrain: number;
  nTest: number;
  maxNewTokens: number;
  batch: number;
  lr: number;
  model?: string;
  tokenizer?: string;
  precision?: 'fp32' | 'bf16';
  bf16Ops?: string;
  progress?: boolean;
}

export async function runDemoCli(o: DemoCliOptions, print: (s: string) => void = (s) => void process.stdout.write(s)): Promise<DemoResults> {
  const recipes = parseRecipes(o.recipes);
  const r = await runDemo({
    out: o.out, recipes, steps: o.steps, seed: o.seed, nTrain: o.nTrain, nTest: o.nTest, maxNewTokens: o.maxNewTokens,
    batch: o.batch, lr: o.lr, ...(o.precision ? { precision: o.precision } : {}), ...(o.bf16Ops !== undefined ? { bf16Ops: parseBf16Ops(o.bf16Ops, 'demo: --bf16-ops') } : {}), ...(o.model ? { model: o.model } : {}), ...(o.tokenizer ? { tokenizer: o.tokenizer } : {}),
    ...(o.progress === false ? { progress: false } : {}),
  });
  print('\n' + formatTable(r.recipes) + '\n');
  for (const [name, run] of Object.entries(r.runs)) {
    print(`${name}: ${run.steps} steps x ${run.examples_per_step} examples, ${run.trained_tokens} trained response tokens ` +
      `(${run.processed_tokens} tokens processed), loss ${run.first_loss.toFixed(3)} -> ${run.final_loss.toFixed(3)}` +
      `${run.test_loss !== null ? `, test loss ${run.test_loss.toFixed(3)} (base ${r.base_test_loss?.toFixed(3)})` : ''}, ${run.train_seconds}s\n`);
  }
  print(`results: ${o.out}/results.json, loss curves: ${o.out}/<recipe>/metrics.jsonl and ${o.out}/loss.svg; total ${r.seconds}s\n`);
  return r;
}

export { DEMO_DEFAULTS };
