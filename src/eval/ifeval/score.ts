// Strict and loose IFEval scoring and the metrics (prompt- and instruction-level accuracy, per
// instruction id and per category), as the reference evaluation_main.py computes them.
import { type CheckContext, INSTRUCTIONS, type Kwargs, KwargsError, categoryOf } from './checks.js';
import { pyStrip } from './py.js';

export interface IfevalInput {
  key?: number | string;
  prompt: string;
  instruction_id_list: string[];
  kwargs: Kwargs[];
}

/** One line of eval_results_{strict,loose}.jsonl (the reference format). */
export interface IfevalResult {
  instruction_id_list: string[];
  prompt: string;
  response: string;
  follow_all_instructions: boolean;
  follow_instruction_list: boolean[];
}

/** The response variants the loose mode tries (in the reference's order). */
export function looseVariants(response: string): string[] {
  const r = response.split('\n');
  const removeFirst = pyStrip(r.slice(1).join('\n'));
  const removeLast = pyStrip(r.slice(0, -1).join('\n'));
  const removeBoth = pyStrip(r.slice(1, -1).join('\n'));
  const noStar = (s: string): string => s.split('*').join('');
  return [response, noStar(response), removeFirst, removeLast, removeBoth, noStar(removeFirst), noStar(removeLast), noStar(removeBoth)];
}

/** Drops null kwargs (the reference only passes the keys an instruction uses). */
function cleanKwargs(kw: Kwargs | undefined): Kwargs {
  const out: Kwargs = {};
  for (const [k, v] of Object.entries(kw ?? {})) if (v !== null && v !== undefined) out[k] = v;
  return out;
}

export function checkInstruction(id: string, response: string, kwargs: Kwargs | undefined, ctx: CheckContext, mode: 'strict' | 'loose'): boolean {
  const c = INSTRUCTIONS.get(id);
  if (!c) throw new KwargsError(`unknown instruction id '${id}'`);
  const kw = cleanKwargs(kwargs);
  const variants = mode === 'strict' ? [response] : looseVariants(response);
  for (const v of variants) if (pyStrip(v) !== '' && c.check(v, kw, ctx)) return true;
  return false;
}

export function evaluate(input: IfevalInput, response: string, ctx: CheckContext, mode: 'strict' | 'loose'): IfevalResult {
  const list = input.instruction_id_list.map((id, i) => checkInstruction(id, response, input.kwargs[i], ctx, mode));
  return {
    instruction_id_list: input.instruction_id_list,
    prompt: input.prompt,
    response,
    follow_all_instructions: list.every((x) => x),
    follow_instruction_list: list,
  };
}

export interface Accuracy { followed: number; total: number; accuracy: number }
export interface ModeSummary {
  prompt_level: Accuracy;
  instruction_level: Accuracy;
  per_category: Record<string, Accuracy>;
  per_instruction: Record<string, Accuracy>;
}

const acc = (followed: number, total: number): Accuracy => ({ followed, total, accuracy: total > 0 ? followed / total : 0 });

export function summarize(results: readonly IfevalResult[]): ModeSummary {
  let pf = 0;
  let inF = 0;
  let inT = 0;
  const cat = new Map<string, [number, number]>();
  const ins = new Map<string, [number, number]>();
  for (const r of results) {
    if (r.follow_all_instructions) pf++;
    r.instruction_id_list.forEach((id, i) => {
      const ok = r.follow_instruction_list[i] ? 1 : 0;
      inF += ok;
      inT++;
      for (const [m, k] of [[cat, categoryOf(id)], [ins, id]] as const) {
        const e = m.get(k) ?? [0, 0];
        e[0] += ok;
        e[1]++;
        m.set(k, e);
      }
    });
  }
  const toObj = (m: Map<string, [number, number]>): Record<string, Accuracy> =>
    Object.fromEntries([...m.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, [f, t]]) => [k, acc(f, t)]));
  return { prompt_level: acc(pf, results.length), instruction_level: acc(inF, inT), per_category: toObj(cat), per_instruction: toObj(ins) };
}
