// Conformance against the reference checker's own results (../shared/data/ifeval): per-instruction
// agreement of our strict and loose decisions on the GPT-4 responses, per instruction id.
import { join } from 'node:path';
import type { CheckContext } from './checks.js';
import { INSTRUCTIONS } from './checks.js';
import { readJsonl } from './io.js';
import { checkInstruction, type IfevalInput, type IfevalResult } from './score.js';

/** Keys whose reference results are random (letter frequency of a non-letter): reported, not counted. */
export const UNREPRODUCIBLE_KEYS: ReadonlySet<number> = new Set([1122, 1129]);

export interface Disagreement { key: number | string | undefined; id: string; mode: 'strict' | 'loose'; ours: boolean; reference: boolean }
export interface IdAgreement { id: string; total: number; strictAgree: number; looseAgree: number }
export interface ConformanceReport {
  perId: IdAgreement[];
  total: number;
  strictAgree: number;
  looseAgree: number;
  /** Prompts of the input file that the reference results do not cover (e.g. key 2785). */
  missing: Array<number | string | undefined>;
  disagreements: Disagreement[];
  /** Decisions on UNREPRODUCIBLE_KEYS (not counted). */
  uncounted: Disagreement[];
}

export function conformance(dataDir: string, ctx: CheckContext, only?: (id: string) => boolean): ConformanceReport {
  const inputs = readJsonl<IfevalInput>(join(dataDir, 'input_data.jsonl'));
  const ref = {
    strict: new Map(readJsonl<IfevalResult>(join(dataDir, 'eval_results_strict.jsonl')).map((r) => [r.prompt, r])),
    loose: new Map(readJsonl<IfevalResult>(join(dataDir, 'eval_results_loose.jsonl')).map((r) => [r.prompt, r])),
  };
  const per = new Map<string, IdAgreement>([...INSTRUCTIONS.keys()].sort().map((id) => [id, { id, total: 0, strictAgree: 0, looseAgree: 0 }]));
  const rep: ConformanceReport = { perId: [], total: 0, strictAgree: 0, looseAgree: 0, missing: [], disagreements: [], uncounted: [] };
  for (const inp of inputs) {
    const rs = ref.strict.get(inp.prompt);
    const rl = ref.loose.get(inp.prompt);
    if (!rs || !rl) { rep.missing.push(inp.key); continue; }
    const uncounted = UNREPRODUCIBLE_KEYS.has(Number(inp.key));
    inp.instruction_id_list.forEach((id, i) => {
      if (only && !only(id)) return;
      const e = per.get(id)!;
      for (const mode of ['strict', 'loose'] as const) {
        const reference = (mode === 'strict' ? rs : rl).follow_instruction_list[i]!;
        const ours = checkInstruction(id, rs.response, inp.kwargs[i], ctx, mode);
        const d = { key: inp.key, id, mode, ours, reference };
        if (uncounted) { if (ours !== reference) rep.uncounted.push(d); continue; }
        if (ours === reference) {
          if (mode === 'strict') { e.strictAgree++; rep.strictAgree++; } else { e.looseAgree++; rep.looseAgree++; }
        } else rep.disagreements.push(d);
      }
      if (!uncounted) { e.total++; rep.total++; }
    });
  }
  rep.perId = [...per.values()];
  return rep;
}

/** A fixed-width table of the per-id agreement. */
export function formatConformance(rep: ConformanceReport): string {
  const pct = (a: number, t: number): string => (t ? ((100 * a) / t).toFixed(1) + '%' : '-').padStart(7);
  const lines = [`${'instruction id'.padEnd(48)} ${'n'.padStart(4)} ${'strict'.padStart(7)} ${'loose'.padStart(7)}`];
  for (const e of rep.perId) lines.push(`${e.id.padEnd(48)} ${String(e.total).padStart(4)} ${pct(e.strictAgree, e.total)} ${pct(e.looseAgree, e.total)}`);
  lines.push(`${'overall'.padEnd(48)} ${String(rep.total).padStart(4)} ${pct(rep.strictAgree, rep.total)} ${pct(rep.looseAgree, rep.total)}`);
  lines.push(`missing from the reference results: ${rep.missing.join(', ') || 'none'}; not counted (random in the reference): ${[...UNREPRODUCIBLE_KEYS].join(', ')}`);
  return lines.join('\n');
}
