// The runs `mixtune ui` shows: every folder under the given run folders that holds a training run
// (a `mixtune train` output_dir, a demo recipe folder, a study run) or the results of a demo or a
// study, read from the files those commands write: run.json, summary.json, metrics.jsonl,
// .mixtune.lock, result.json, responses.jsonl, results.json. Nothing is written.
import { existsSync, lstatSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import type { Root } from './files.js';

export type RunStatus = 'running' | 'finished' | 'stopped' | 'failed';
export type RunKind = 'train' | 'demo-run' | 'study-run';
export type ResultsKind = 'demo' | 'study-miso' | 'study-moi';

export interface RunInfo {
  /** "<root index>/<path inside the root>" (the root itself: "<root index>/"). */
  id: string;
  root: number;
  /** '/'-separated path inside the root ('' for the root itself). */
  path: string;
  name: string;
  kind: RunKind;
  status: RunStatus;
  /** Why the status is what it is, for the tooltip ("lock held by pid 123", ...). */
  statusNote: string;
  recipe: string | null;
  steps: number | null;
  totalSteps: number | null;
  tokensPerS: number | null;
  finalLoss: number | null;
  evalLoss: number | null;
  /** run.json's settings (the keys that decide the run), or null. */
  config: Record<string, unknown> | null;
  summary: Record<string, unknown> | null;
  /** Files a person may open (relative to the run folder). */
  files: string[];
  /** A model the Chat view can load (final/ holds an HF folder). */
  hasModel: boolean;
  /** Last change of metrics.jsonl or summary.json (ms since the epoch). */
  updated: number;
}

export interface ResultsInfo {
  id: string;
  root: number;
  path: string;
  name: string;
  kind: ResultsKind;
  updated: number;
}

export interface StepPoint {
  step: number;
  loss: number;
  lr: number | null;
  grad_norm: number | null;
  tokens_per_s: number | null;
  elapsed: number | null;
}

export interface Metrics {
  steps: StepPoint[];
  evals: { step: number; eval_loss: number }[];
  /** Lines that are not JSON objects of either kind (counted, skipped). */
  malformed: number;
}

/** Folders never searched for runs: checkpoints, exported models, data, hidden folders. */
const SKIP_DIR = /^(checkpoint-\d+|final|adapter|data|node_modules|\..*|final\.(tmp|old)-.*)$/;
const MAX_DEPTH = 6;
const MAX_DIRS = 20000;

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

function readJson(path: string): Record<string, unknown> | null {
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function mtime(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

/** Every metrics.jsonl line that parses; anything else (torn, edited, foreign) is counted and skipped. */
export function parseMetrics(text: string): Metrics {
  const out: Metrics = { steps: [], evals: [], malformed: 0 };
  const lines = text.split('\n');
  // a last line without its newline may still be being written: neither used nor counted
  if (!text.endsWith('\n')) lines.pop();
  for (const line of lines) {
    if (line.trim() === '') continue;
    let o: unknown;
    try {
      o = JSON.parse(line);
    } catch {
      out.malformed++;
      continue;
    }
    if (typeof o !== 'object' || o === null || Array.isArray(o)) {
      out.malformed++;
      continue;
    }
    const r = o as Record<string, unknown>;
    const step = num(r.step);
    if (step === null) {
      out.malformed++;
    } else if ('eval_loss' in r) {
      // eval_loss null: no eval rows; nothing to draw
      const e = num(r.eval_loss);
      if (e !== null) out.evals.push({ step, eval_loss: e });
      else if (r.eval_loss !== null) out.malformed++;
    } else if (num(r.loss) !== null) {
      out.steps.push({ step, loss: num(r.loss)!, lr: num(r.lr), grad_norm: num(r.grad_norm), tokens_per_s: num(r.tokens_per_s), elapsed: num(r.elapsed) });
    } else {
      out.malformed++;
    }
  }
  return out;
}

export function readMetrics(dir: string): Metrics {
  try {
    return parseMetrics(readFileSync(join(dir, 'metrics.jsonl'), 'utf8'));
  } catch {
    return { steps: [], evals: [], malformed: 0 };
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** How long a run without a lock (demo and study runs train in-process) counts as running after its last metrics line. */
export const QUIET_RUNNING_MS = 120_000;

function statusOf(dir: string, kind: RunKind, summary: Record<string, unknown> | null, record: Record<string, unknown> | null, metricsTime: number, now: number): { status: RunStatus; note: string } {
  const lock = readJson(join(dir, '.mixtune.lock'));
  if (lock && typeof lock.pid === 'number') {
    if (lock.host !== hostname()) return { status: 'running', note: `locked by pid ${lock.pid} on ${String(lock.host)}` };
    if (pidAlive(lock.pid)) return { status: 'running', note: `training (pid ${lock.pid})` };
  }
  if (summary) {
    if (summary.interrupted === true) return { status: 'stopped', note: 'interrupted; mixtune train --resume continues it' };
    const s = num(summary.steps);
    const t = num(summary.total_steps);
    if (s !== null && t !== null && s >= t) return { status: 'finished', note: `finished ${s}/${t} steps` };
    if (s !== null && t !== null) return { status: 'stopped', note: `stopped at step ${s} of ${t} (--stop-after); --resume continues it` };
  }
  if (record?.finished === true) return { status: 'finished', note: 'run.json: finished' };
  if (kind === 'study-run' && existsSync(join(dir, 'result.json'))) return { status: 'finished', note: 'result.json written' };
  if (kind === 'demo-run' && existsSync(join(dir, 'responses.jsonl'))) return { status: 'finished', note: 'evaluated (responses.jsonl)' };
  if (kind !== 'train' && now - metricsTime < QUIET_RUNNING_MS) return { status: 'running', note: 'metrics.jsonl is growing' };
  if (lock) return { status: 'failed', note: `the process that trained it (pid ${String(lock.pid)}) is gone without finishing` };
  return { status: 'failed', note: 'ended without a summary (killed, or an error)' };
}

/** What one run folder holds. */
export function readRun(root: Root, rootIndex: number, path: string, now = Date.now()): RunInfo {
  const dir = path === '' ? root.real : join(root.real, ...path.split('/'));
  const summary = readJson(join(dir, 'summary.json'));
  const record = readJson(join(dir, 'run.json'));
  const result = readJson(join(dir, 'result.json'));
  const kind: RunKind = record || summary ? 'train' : result || /(^|\/)runs\/[^/]+$/.test(path) ? 'study-run' : 'demo-run';
  const metricsTime = mtime(join(dir, 'metrics.jsonl'));
  const m = readMetrics(dir);
  const last = m.steps[m.steps.length - 1];
  const lastEval = m.evals[m.evals.length - 1];
  const settings = record && typeof record.settings === 'object' && record.settings !== null ? (record.settings as Record<string, unknown>) : null;
  const data = summary && typeof summary.data === 'object' && summary.data !== null ? (summary.data as Record<string, unknown>) : null;
  const { status, note } = statusOf(dir, kind, summary, record, metricsTime, now);
  const files = ['metrics.jsonl', 'summary.json', 'run.json', 'result.json', 'responses.jsonl'].filter((f) => existsSync(join(dir, f)));
  const recipe = (typeof settings?.['recipe.name'] === 'string' ? settings['recipe.name'] : null) ?? (typeof data?.recipe === 'string' ? data.recipe : null) ??
    (kind === 'demo-run' ? basename(dir) : kind === 'study-run' ? basename(dir).replace(/-[sd]\d+$/, '') : null);
  const totalFromSettings = num(settings?.['training.max_steps']);
  return {
    id: `${rootIndex}/${path}`, root: rootIndex, path,
    name: path === '' ? basename(root.given.replace(/[/\\]+$/, '')) || root.given : `${basename(root.given.replace(/[/\\]+$/, ''))}/${path}`,
    kind, status, statusNote: note, recipe,
    steps: num(summary?.steps) ?? last?.step ?? null,
    totalSteps: num(summary?.total_steps) ?? totalFromSettings ?? (status === 'finished' && last ? last.step : null),
    tokensPerS: num(summary?.tokens_per_s) ?? (last ? meanRate(m.steps) : null),
    finalLoss: num(summary?.final_loss) ?? last?.loss ?? null,
    evalLoss: num(summary?.eval_loss) ?? lastEval?.eval_loss ?? null,
    config: settings, summary, files,
    hasModel: existsSync(join(dir, 'final', 'config.json')),
    updated: Math.max(metricsTime, mtime(join(dir, 'summary.json'))),
  };
}

/** tokens/s over the last (up to) 10 logged steps. */
function meanRate(steps: StepPoint[]): number | null {
  const r = steps.slice(-10).map((s) => s.tokens_per_s).filter((x): x is number => x !== null);
  return r.length ? Math.round(r.reduce((a, b) => a + b, 0) / r.length) : null;
}

export function resultsKind(r: Record<string, unknown>): ResultsKind | null {
  if (typeof r.recipes === 'object' && r.recipes !== null && typeof r.per_instruction_strict === 'object') return 'demo';
  const configs = r.configs;
  if (typeof configs !== 'object' || configs === null) return null;
  const first = Object.values(configs as Record<string, unknown>)[0] as Record<string, unknown> | undefined;
  if (!first) return null;
  if (typeof first.metrics === 'object') return 'study-miso';
  if (typeof first.domains === 'object') return 'study-moi';
  return null;
}

export interface Found {
  runs: { root: number; path: string }[];
  results: ResultsInfo[];
}

/** Walks every root (depth <= 6; checkpoints, final, data, hidden folders and symlinks skipped) for runs and results. */
export function findRuns(roots: readonly Root[]): Found {
  const found: Found = { runs: [], results: [] };
  let budget = MAX_DIRS;
  roots.forEach((root, ri) => {
    const walk = (dir: string, rel: string, depth: number): void => {
      if (--budget < 0) return;
      let names: string[];
      try {
        names = readdirSync(dir);
      } catch {
        return;
      }
      const has = new Set(names);
      if (has.has('results.json')) {
        const r = readJson(join(dir, 'results.json'));
        const kind = r ? resultsKind(r) : null;
        if (kind) found.results.push({ id: `${ri}/${rel}`, root: ri, path: rel, name: rel === '' ? basename(root.given.replace(/[/\\]+$/, '')) : `${basename(root.given.replace(/[/\\]+$/, ''))}/${rel}`, kind, updated: mtime(join(dir, 'results.json')) });
      }
      const isRun = has.has('metrics.jsonl') || has.has('run.json') || has.has('summary.json');
      if (isRun) found.runs.push({ root: ri, path: rel });
      if (depth >= MAX_DEPTH || (isRun && !has.has('results.json'))) return;
      for (const n of names.sort()) {
        if (SKIP_DIR.test(n)) continue;
        const p = join(dir, n);
        let st;
        try {
          st = lstatSync(p); // symlinks are not followed: they may lead out of the root
        } catch {
          continue;
        }
        if (st.isDirectory()) walk(p, rel === '' ? n : `${rel}/${n}`, depth + 1);
      }
    };
    walk(root.real, '', 0);
  });
  return found;
}

/** The run folder of an id, or null when the id names no run found under the roots. */
export function parseRunId(id: string, roots: readonly Root[]): { root: number; path: string } | null {
  const m = /^(\d+)\/(.*)$/.exec(id);
  if (!m) return null;
  const root = Number(m[1]);
  if (root >= roots.length) return null;
  return { root, path: m[2]! };
}
