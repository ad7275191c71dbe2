// The Results view's tables, from the results.json that `mixtune demo`, `mixtune study miso` and
// `mixtune study moi` write: one row per recipe / configuration with each metric as mean ± std
// (std null for a single run), the scores per constraint type (or per domain), and links to every
// run's responses.jsonl with the test records they answer (for the verdicts).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ResultsKind } from './runs.js';

export interface Stat {
  mean: number;
  std: number | null;
}

export interface ResponsesLink {
  label: string;
  /** responses.jsonl, relative to the results folder. */
  responses: string;
  /** The test records they answer (same order), when found. */
  test: string | null;
}

export interface ResultsRow {
  name: string;
  description: string | null;
  values: Record<string, Stat | null>;
  runs: ResponsesLink[];
}

export interface ResultsTable {
  kind: ResultsKind;
  title: string;
  /** Metric columns: key and label; values are fractions (shown as %). */
  metrics: { key: string; label: string }[];
  rows: ResultsRow[];
  /** Accuracy per constraint type (instruction id) or per domain: type -> row name -> fraction. */
  perType: { title: string; types: string[]; values: Record<string, Record<string, number>> };
  /** MISO study: instruction-level strict accuracy by constraints per prompt. */
  perK: { ks: string[]; values: Record<string, Record<string, Stat>> } | null;
  settings: Record<string, unknown>;
  /** Files beside results.json a person may open (plots, tables). */
  files: string[];
}

const DEMO_METRICS = [
  { key: 'prompt_strict', label: 'prompt strict' },
  { key: 'inst_strict', label: 'inst strict' },
  { key: 'prompt_loose', label: 'prompt loose' },
  { key: 'inst_loose', label: 'inst loose' },
  { key: 'flatten_inst_strict', label: 'flat inst strict' },
];

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : {});
const numOr = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const statOf = (v: unknown): Stat | null => {
  if (typeof v === 'number') return { mean: v, std: null };
  const o = obj(v);
  const m = numOr(o.mean);
  return m === null ? null : { mean: m, std: numOr(o.std) };
};

/** runs/<name>-s<seed> (and base-d<seed>) folders of a study that hold responses.jsonl. */
function studyRuns(dir: string, name: string, testOf: (runDir: string) => string | null): ResponsesLink[] {
  let names: string[];
  try {
    names = readdirSync(join(dir, 'runs'));
  } catch {
    return [];
  }
  const re = new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-([sd])(\\d+)$`);
  return names.filter((n) => re.test(n) && existsSync(join(dir, 'runs', n, 'responses.jsonl')))
    .sort((a, b) => Number(re.exec(a)![2]) - Number(re.exec(b)![2]))
    .map((n) => ({ label: `${re.exec(n)![1] === 's' ? 'seed' : 'data seed'} ${re.exec(n)![2]}`, responses: `runs/${n}/responses.jsonl`, test: testOf(n) }));
}

function demoTable(dir: string, r: Obj): ResultsTable {
  const recipes = obj(r.recipes);
  const perInst = obj(r.per_instruction_strict);
  const test = existsSync(join(dir, 'data', 'test.jsonl')) ? 'data/test.jsonl' : null;
  const rows: ResultsRow[] = Object.entries(recipes).map(([name, m]) => ({
    name, description: null,
    values: Object.fromEntries(DEMO_METRICS.map(({ key }) => [key, statOf(obj(m)[key])])),
    runs: existsSync(join(dir, name, 'responses.jsonl')) ? [{ label: name, responses: `${name}/responses.jsonl`, test }] : [],
  }));
  const config = obj(r.config);
  return {
    kind: 'demo', title: `mixtune demo: ${String(config.steps ?? '?')} steps × ${String(config.batch ?? '?')} examples, seed ${String(config.seed ?? '?')}`,
    metrics: DEMO_METRICS, rows, perType: perTypeOf('instruction-level strict accuracy per constraint type', perInst), perK: null,
    settings: { ...config, data: r.data, seconds: r.seconds }, files: [],
  };
}

function misoTable(dir: string, r: Obj): ResultsTable {
  const configs = obj(r.configs);
  const settings = obj(r.settings);
  // a run's data: data/seed-<data seed>/test.jsonl
  const testOf = (runDir: string): string | null => {
    const res = obj(readJsonSafe(join(dir, 'runs', runDir, 'result.json')));
    const seed = numOr(res.data_seed) ?? (/-d(\d+)$/.exec(runDir) ? Number(/-d(\d+)$/.exec(runDir)![1]) : null);
    const p = seed === null ? null : `data/seed-${seed}/test.jsonl`;
    return p && existsSync(join(dir, p)) ? p : null;
  };
  const rows: ResultsRow[] = Object.entries(configs).map(([name, c]) => ({
    name, description: typeof obj(c).description === 'string' ? (obj(c).description as string) : null,
    values: Object.fromEntries(DEMO_METRICS.map(({ key }) => [key, statOf(obj(obj(c).metrics)[key])])),
    runs: studyRuns(dir, name, testOf),
  }));
  const perInst = Object.fromEntries(Object.entries(configs).map(([n, c]) => [n, obj(obj(c).per_instruction_strict)]));
  const ks = [...new Set(Object.values(configs).flatMap((c) => Object.keys(obj(obj(c).per_k_inst_strict))))].sort((a, b) => Number(a) - Number(b));
  const perK = Object.fromEntries(Object.entries(configs).map(([n, c]) => [n, Object.fromEntries(Object.entries(obj(obj(c).per_k_inst_strict)).map(([k, v]) => [k, statOf(v)!]).filter(([, v]) => v))]));
  return {
    kind: 'study-miso', title: `mixtune study miso: ${String(settings.steps ?? '?')} steps, ${String(settings.seeds ?? '?')} seed(s)`,
    metrics: DEMO_METRICS, rows, perType: perTypeOf('instruction-level strict accuracy per constraint type (mean over seeds)', perInst),
    perK: ks.length ? { ks, values: perK } : null, settings, files: [],
  };
}

function moiTable(dir: string, r: Obj): ResultsTable {
  const configs = obj(r.configs);
  const settings = obj(r.settings);
  const domains = [...new Set(Object.values(configs).flatMap((c) => Object.keys(obj(obj(c).domains))))];
  // `--eval-prompts`: the accuracy under held-out system prompts (mean ± std across prompts)
  const heldout = Object.values(configs).some((c) => numOr(obj(obj(c).prompt_sensitivity).mean) !== null);
  const metrics = [...domains.map((d) => ({ key: d, label: d })), { key: 'avg', label: 'average' }, ...(heldout ? [{ key: 'heldout', label: 'held-out prompts' }] : [])];
  const rows: ResultsRow[] = Object.entries(configs).map(([name, cv]) => {
    const c = obj(cv);
    const sd = obj(c.std);
    const values: Record<string, Stat | null> = {};
    for (const d of domains) values[d] = numOr(obj(c.domains)[d]) === null ? null : { mean: numOr(obj(c.domains)[d])!, std: numOr(obj(sd.domains)[d]) };
    values.avg = numOr(c.avg) === null ? null : { mean: numOr(c.avg)!, std: numOr(sd.avg) };
    if (heldout) {
      const ps = obj(c.prompt_sensitivity);
      values.heldout = numOr(ps.mean) === null ? null : { mean: numOr(ps.mean)!, std: numOr(ps.std) };
    }
    return { name, description: typeof c.description === 'string' ? c.description : null, values, runs: studyRuns(dir, name, () => null) };
  });
  const perDomain = Object.fromEntries(Object.entries(configs).map(([n, c]) => [n, obj(obj(c).domains)]));
  return {
    kind: 'study-moi', title: `mixtune study moi: ${String(settings.steps ?? '?')} steps, ${String(settings.seeds ?? '?')} seed(s)`,
    metrics, rows, perType: perTypeOf('accuracy per domain (mean over seeds)', perDomain), perK: null, settings, files: [],
  };
}

/** row name -> type -> value, turned into type -> row name -> value (numbers only). */
function perTypeOf(title: string, byRow: Record<string, unknown>): ResultsTable['perType'] {
  const values: Record<string, Record<string, number>> = {};
  for (const [row, m] of Object.entries(byRow)) {
    for (const [type, v] of Object.entries(obj(m))) {
      if (typeof v !== 'number') continue;
      (values[type] ??= {})[row] = v;
    }
  }
  return { title, types: Object.keys(values).sort(), values };
}

function readJsonSafe(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return null;
  }
}

/** The table of the results.json in `dir` (null when it is missing or of no known kind). */
export function readResults(dir: string, kind: ResultsKind): ResultsTable | null {
  const r = readJsonSafe(join(dir, 'results.json'));
  if (typeof r !== 'object' || r === null) return null;
  const t = kind === 'demo' ? demoTable(dir, r as Obj) : kind === 'study-miso' ? misoTable(dir, r as Obj) : moiTable(dir, r as Obj);
  t.files = ['results.json', 'table.md', 'loss.svg', 'miso.svg', 'moi.svg', 'moi-curves.svg'].filter((f) => existsSync(join(dir, f)));
  return t;
}
