// Crab (constraint back-translation, THU-KEG/Crab) seed records:
//   {id, messages: [{role: user, content: seed instruction}, {role: assistant, content: response}],
//    Aug_instruction: {Refined_Instruction: string, Additional_Instruction: {<type>: <constraint>}}}
// The Additional_Instruction map is LLM-generated and inconsistent: keys carry stray spaces
// (" Hierarchical_Instructions"), singular/plural and synonym variants ("Paragraph" vs
// "Paragraphs_Constraints", "Specificity_Constraint" vs "Specificity_Constraints"). Keys only name
// the constraint type, so they never need to match a list; what must be tolerated is the shape of
// the values: strings (the sample's only shape), lists of strings, nested objects, empty or null
// entries, and an Aug_instruction stored as a JSON string. Field names are matched ignoring case,
// spaces and underscores.
import { BadRecord } from './bad-record.js';

export interface CrabConstraints {
  /** Constraint sentences in map order, trimmed, empty entries dropped, exact duplicates removed. */
  constraints: string[];
  /** The (trimmed) map key each constraint came from; nested keys joined with '.'. */
  types: string[];
  /** Aug_instruction.Refined_Instruction when present (the paraphrased seed; not used as base). */
  refined?: string;
}

const normKey = (k: string): string => k.toLowerCase().replace(/[^a-z0-9]/g, '');

/** The value of the first key of obj whose normalized name is in `names`. */
function fuzzyField(obj: Record<string, unknown>, names: string[]): [string, unknown] | undefined {
  for (const [k, v] of Object.entries(obj)) if (names.includes(normKey(k))) return [k, v];
  return undefined;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function maybeJson(v: unknown): unknown {
  if (typeof v !== 'string') return v;
  const t = v.trim();
  if (!(t.startsWith('{') || t.startsWith('['))) return v;
  try {
    return JSON.parse(t);
  } catch {
    return v;
  }
}

export function isCrabRecord(rec: Record<string, unknown>): boolean {
  return fuzzyField(rec, ['auginstruction', 'augmentedinstruction']) !== undefined;
}

export function parseCrabAugmentation(rec: Record<string, unknown>): CrabConstraints {
  const augField = fuzzyField(rec, ['auginstruction', 'augmentedinstruction']);
  if (!augField) throw new BadRecord('field Aug_instruction is missing');
  const aug = maybeJson(augField[1]);
  if (!isObject(aug)) throw new BadRecord(`field ${augField[0]} must be an object, got ${Array.isArray(aug) ? 'a list' : typeof aug}`);
  const addField = fuzzyField(aug, ['additionalinstruction', 'additionalinstructions', 'additionalconstraints', 'additionalconstraint']);
  if (!addField) throw new BadRecord(`field ${augField[0]}.Additional_Instruction is missing`);
  const where = `${augField[0]}.${addField[0]}`;
  const constraints: string[] = [];
  const types: string[] = [];
  const seen = new Set<string>();
  const collect = (v: unknown, type: string, path: string): void => {
    v = maybeJson(v);
    if (v === null || v === undefined) return;
    if (typeof v === 'string') {
      const t = v.trim();
      if (t && !seen.has(t)) {
        seen.add(t);
        constraints.push(t);
        types.push(type);
      }
      return;
    }
    if (Array.isArray(v)) {
      v.forEach((x, i) => collect(x, type, `${path}[${i}]`));
      return;
    }
    if (isObject(v)) {
      for (const [k, x] of Object.entries(v)) collect(x, type ? `${type}.${k.trim()}` : k.trim(), `${path}.${k}`);
      return;
    }
    throw new BadRecord(`field ${path} must be text, a list or a map, got ${typeof v}`);
  };
  collect(addField[1], '', where);
  if (constraints.length === 0) throw new BadRecord(`field ${where} holds no constraint text`);
  const refinedField = fuzzyField(aug, ['refinedinstruction']);
  const refined = typeof refinedField?.[1] === 'string' && refinedField[1].trim() ? refinedField[1].trim() : undefined;
  return { constraints, types, ...(refined !== undefined ? { refined } : {}) };
}
