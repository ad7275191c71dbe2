// `mixtune synth constraints --n N --seed S --out FILE [--split train|test] [--test-out FILE --n-test M]`:
// writes verified synthetic multi-constraint records (JSON lines, atomic).
import { dirname, resolve } from 'node:path';
import { ensureWritableDir, writeJsonlAtomic } from '../util/fs.js';
import { synthesizeConstraints, type Split, type SynthRecord } from '../synth/constraints.js';
import { MixtuneError } from '../util/errors.js';

export interface SynthCliOptions {
  n: number;
  seed: number;
  out: string;
  split: Split;
  maxConstraints?: number;
  testOut?: string;
  nTest?: number;
}

function describe(records: readonly SynthRecord[]): string {
  const byK = new Map<number, number>();
  for (const r of records) byK.set(r.instruction_id_list.length, (byK.get(r.instruction_id_list.length) ?? 0) + 1);
  return [...byK.entries()].sort(([a], [b]) => a - b).map(([k, n]) => `${n}x${k}`).join(' ');
}

export function runSynthConstraints(o: SynthCliOptions, log: (s: string) => void = (s) => void process.stderr.write(s + '\n')): void {
  const jobs: Array<{ split: Split; n: number; out: string; max?: number }> = [{ split: o.split, n: o.n, out: o.out, ...(o.maxConstraints !== undefined ? { max: o.maxConstraints } : {}) }];
  if (o.testOut) {
    if (o.split === 'test') throw new MixtuneError('synth constraints: --test-out goes with the train split (--out is then the train file)');
    jobs.push({ split: 'test', n: o.nTest ?? Math.max(1, Math.round(o.n / 4)), out: o.testOut });
  }
  // fail fast: every output folder is writable before any synthesis
  for (const j of jobs) ensureWritableDir(dirname(resolve(j.out)), '--out');
  for (const j of jobs) {
    const r = synthesizeConstraints({ n: j.n, seed: o.seed, split: j.split, ...(j.max !== undefined ? { maxConstraints: j.max } : {}) });
    writeJsonlAtomic(j.out, r.records);
    log(`synth constraints: ${j.split} ${r.records.length} examples (constraints per prompt: ${describe(r.records)}) -> ${j.out}; ` +
      `all verified by the IFEval checker (strict); ${r.retries} regenerated, ${r.dropped} dropped`);
  }
}
