// The task definitions of `mixtune eval gsm8k | math | mbpp | humaneval`: data loading, prompts,
// references and per-item scoring.
//
// Default prompts (one user turn rendered with the model's chat template; --system adds a system
// turn; --shots K puts K solved examples before it as earlier user/assistant turns):
// - gsm8k:  "Solve the following math problem step by step. At the end, write the final answer as
//            a number on its own line in the form \"#### <number>\".\n\nQuestion: {question}"
//            shots: the first K problems of gsm8k/train.jsonl with their reference solutions
//            (calculator annotations <<...>> removed), K <= 8.
// - math:   "{problem}\n\nPlease reason step by step, and put your final answer within \\boxed{}."
//            shots: the 4 Minerva (Lewkowycz et al. 2022) exemplars, K <= 4.
// - mbpp:   "You are an expert Python programmer, and here is your task: {text} Your code should
//            pass these tests:\n\n{test_list joined by newlines}\n\nWrite the function in a single
//            ```python code block." (the MBPP paper's prompt + a format request)
//            shots: MBPP tasks 2, 3, 4 (the paper's few-shot examples), K <= 3; --split test
//            (task ids 11-510, the default), validation (511-600), train (601-974), prompt (1-10), all.
// - humaneval: "Complete the following Python function. Reply with the complete function
//            (signature included) in a single ```python code block.\n\n```python\n{prompt}```"
//            no shots.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { ChatMessage } from '../io/chat.js';
import { MixtuneError } from '../util/errors.js';
import { sharedDir } from '../util/paths.js';
import { type HumanEvalItem, type MbppItem, type SandboxOptions, extractCode, humanevalProgram, humanevalSolution, mbppEntries, mbppProgram, runFunctionTests } from './code.js';
import { extractGsm8kAnswer, extractMathAnswer, gsm8kEquiv, gsm8kReference, lastBoxed, mathEquiv } from './math.js';

export type TaskName = 'gsm8k' | 'math' | 'mbpp' | 'humaneval';
export const TASK_NAMES: readonly TaskName[] = ['gsm8k', 'math', 'mbpp', 'humaneval'];

export interface TaskItem {
  id: string;
  /** The record as read from the data file. */
  record: Record<string, unknown>;
}

export interface PromptOptions {
  shots: number;
  system?: string;
}

export interface ScoreOptions {
  sandbox?: SandboxOptions;
}

/** One scored item: `correct` decides the metric; the rest goes to results.jsonl. */
export interface Scored {
  correct: boolean;
  fields: Record<string, unknown>;
}

export interface TaskDef {
  name: TaskName;
  /** 'accuracy' (math) or 'pass@1' (code). */
  metric: 'accuracy' | 'pass@1';
  kind: 'math' | 'code';
  defaultData(): string;
  defaultMaxNewTokens: number;
  maxShots: number;
  /** Reads the data file; `split` only for mbpp. */
  load(path: string, split?: string): TaskItem[];
  messages(item: TaskItem, o: PromptOptions, dataPath: string): ChatMessage[];
  score(item: TaskItem, response: string, o: ScoreOptions): Promise<Scored>;
}

// ---------------------------------------------------------------------------------------------
// Reading data

function readJsonl(path: string, gz = false): Record<string, unknown>[] {
  if (!existsSync(path)) throw new MixtuneError(`${path}: data file not found`);
  let text: string;
  try {
    text = gz || path.endsWith('.gz') ? gunzipSync(readFileSync(path)).toString('utf8') : readFileSync(path, 'utf8');
  } catch (e) {
    throw new MixtuneError(`${path}: cannot read: ${(e as Error).message}`);
  }
  const out: Record<string, unknown>[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let r: unknown;
    try {
      r = JSON.parse(line);
    } catch {
      throw new MixtuneError(`${path}: line ${i + 1} is not valid JSON`);
    }
    if (!r || typeof r !== 'object' || Array.isArray(r)) throw new MixtuneError(`${path}: line ${i + 1} is not a JSON object`);
    out.push(r as Record<string, unknown>);
  });
  return out;
}

function str(r: Record<string, unknown>, field: string, where: string): string {
  const v = r[field];
  if (typeof v !== 'string') throw new MixtuneError(`${where}: field "${field}" must be a string`);
  return v;
}

function checkUniqueIds(items: TaskItem[], path: string): TaskItem[] {
  const seen = new Set<string>();
  for (const it of items) {
    if (seen.has(it.id)) throw new MixtuneError(`${path}: duplicate item id ${it.id}`);
    seen.add(it.id);
  }
  return items;
}

// ---------------------------------------------------------------------------------------------
// GSM8K

export const GSM8K_INSTRUCTION =
  'Solve the following math problem step by step. At the end, write the final answer as a number on its own line in the form "#### <number>".';

function gsm8kUser(question: string): string {
  return `${GSM8K_INSTRUCTION}\n\nQuestion: ${question}`;
}

const gsm8k: TaskDef = {
  name: 'gsm8k',
  metric: 'accuracy',
  kind: 'math',
  defaultData: () => join(sharedDir(), 'data', 'gsm8k', 'test.jsonl'),
  defaultMaxNewTokens: 512,
  maxShots: 8,
  load(path) {
    return checkUniqueIds(readJsonl(path).map((r, i) => {
      const where = `${path}: line ${i + 1}`;
      str(r, 'question', where);
      const ref = gsm8kReference(str(r, 'answer', where));
      if (ref === null) throw new MixtuneError(`${where}: "answer" has no "#### <number>"`);
      return { id: typeof r.id === 'string' || typeof r.id === 'number' ? String(r.id) : String(i), record: r };
    }), path);
  },
  messages(item, o, dataPath) {
    const msgs: ChatMessage[] = [];
    if (o.system !== undefined) msgs.push({ role: 'system', content: o.system });
    if (o.shots > 0) {
      const train = join(dataPath, '..', 'train.jsonl');
      const path = existsSync(train) ? train : join(sharedDir(), 'data', 'gsm8k', 'train.jsonl');
      for (const r of readJsonlCached(path).slice(0, o.shots)) {
        msgs.push({ role: 'user', content: gsm8kUser(str(r, 'question', path)) });
        msgs.push({ role: 'assistant', content: str(r, 'answer', path).replace(/<<[^>]*>>/g, '') });
      }
    }
    msgs.push({ role: 'user', content: gsm8kUser(item.record.question as string) });
    return msgs;
  },
  async score(item, response) {
    const reference = gsm8kReference(item.record.answer as string);
    const ex = extractGsm8kAnswer(response);
    const correct = gsm8kEquiv(ex.answer, reference);
    return { correct, fields: { extracted: ex.answer, method: ex.method, reference } };
  },
};

const jsonlCache = new Map<string, Record<string, unknown>[]>();
function readJsonlCached(path: string): Record<string, unknown>[] {
  let v = jsonlCache.get(path);
  if (!v) {
    v = readJsonl(path);
    jsonlCache.set(path, v);
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// MATH

export const MATH_INSTRUCTION = 'Please reason step by step, and put your final answer within \\boxed{}.';

/** The four Minerva few-shot exemplars (problem, solution). */
export const MINERVA_SHOTS: readonly [string, string][] = [
  [
    'Find the domain of the expression  $\\frac{\\sqrt{x-2}}{\\sqrt{5-x}}$.',
    'The expressions inside each square root must be non-negative. Therefore, $x-2 \\ge 0$, so $x\\ge2$, and $5 - x \\ge 0$, so $x \\le 5$. Also, the denominator cannot be equal to zero, so $5-x>0$, which gives $x<5$. Therefore, the domain of the expression is $\\boxed{[2,5)}$.',
  ],
  [
    'If $\\det \\mathbf{A} = 2$ and $\\det \\mathbf{B} = 12,$ then find $\\det (\\mathbf{A} \\mathbf{B}).$',
    'We have that $\\det (\\mathbf{A} \\mathbf{B}) = (\\det \\mathbf{A})(\\det \\mathbf{B}) = (2)(12) = \\boxed{24}.$',
  ],
  [
    'Terrell usually lifts two 20-pound weights 12 times. If he uses two 15-pound weights instead, how many times must Terrell lift them in order to lift the same total weight?',
    'If Terrell lifts two 20-pound weights 12 times, he lifts a total of $2\\cdot 12\\cdot20=480$ pounds of weight.  If he lifts two 15-pound weights instead for $n$ times, he will lift a total of $2\\cdot15\\cdot n=30n$ pounds of weight.  Equating this to 480 pounds, we can solve for $n$: \\begin{align*}\n30n&=480\\\\\n\\Rightarrow\\qquad n&=480/30=\\boxed{16}\n\\end{align*}',
  ],
  [
    'If the system of equations\n\n\\begin{align*}\n6x-4y&=a,\\\\\n6y-9x &=b.\n\\end{align*}has a solution $(x, y)$ where $x$ and $y$ are both nonzero, find $\\frac{a}{b},$ assuming $b$ is nonzero.',
    'If we multiply the first equation by $-\\frac{3}{2}$, we obtain\n\n$$6y-9x=-\\frac{3}{2}a.$$Since we also know that $6y-9x=b$, we have\n\n$$-\\frac{3}{2}a=b\\Rightarrow\\frac{a}{b}=\\boxed{-\\frac{2}{3}}.$$',
  ],
];

function mathUser(problem: string): string {
  return `${problem}\n\n${MATH_INSTRUCTION}`;
}

/** The reference answer of a MATH record: `answer` (MATH-500), else the last \boxed{} of `solution`. */
export function mathReference(r: Record<string, unknown>): string | null {
  if (typeof r.answer === 'string') return r.answer;
  if (typeof r.solution === 'string') return lastBoxed(r.solution);
  return null;
}

const math: TaskDef = {
  name: 'math',
  metric: 'accuracy',
  kind: 'math',
  defaultData: () => join(sharedDir(), 'data', 'math500', 'test_ori.jsonl'),
  defaultMaxNewTokens: 1024,
  maxShots: MINERVA_SHOTS.length,
  load(path) {
    return checkUniqueIds(readJsonl(path).map((r, i) => {
      const where = `${path}: line ${i + 1}`;
      str(r, 'problem', where);
      if (mathReference(r) === null) throw new MixtuneError(`${where}: no "answer" (or \\boxed{} in "solution")`);
      return { id: typeof r.unique_id === 'string' ? r.unique_id : String(i), record: r };
    }), path);
  },
  messages(item, o) {
    const msgs: ChatMessage[] = [];
    if (o.system !== undefined) msgs.push({ role: 'system', content: o.system });
    for (const [p, s] of MINERVA_SHOTS.slice(0, o.shots)) {
      msgs.push({ role: 'user', content: mathUser(p) });
      msgs.push({ role: 'assistant', content: s });
    }
    msgs.push({ role: 'user', content: mathUser(item.record.problem as string) });
    return msgs;
  },
  async score(item, response) {
    const reference = mathReference(item.record);
    const ex = extractMathAnswer(response);
    const correct = mathEquiv(ex.answer, reference);
    return { correct, fields: { extracted: ex.answer, method: ex.method, reference } };
  },
};

// ---------------------------------------------------------------------------------------------
// MBPP

export const MBPP_SPLITS: Record<string, [number, number]> = {
  prompt: [1, 10],
  test: [11, 510],
  validation: [511, 600],
  train: [601, 974],
  all: [-Infinity, Infinity],
};
const MBPP_SHOT_IDS = [2, 3, 4];

function mbppUser(it: MbppItem): string {
  return (
    `You are an expert Python programmer, and here is your task: ${it.text} Your code should pass these tests:\n\n` +
    `${it.test_list.join('\n')}\n\nWrite the function in a single \`\`\`python code block.`
  );
}

function asMbpp(r: Record<string, unknown>, where: string): MbppItem {
  if (typeof r.task_id !== 'number') throw new MixtuneError(`${where}: field "task_id" must be a number`);
  str(r, 'text', where);
  str(r, 'code', where);
  if (!Array.isArray(r.test_list) || r.test_list.some((t) => typeof t !== 'string')) throw new MixtuneError(`${where}: field "test_list" must be a list of strings`);
  return { ...(r as unknown as MbppItem), test_setup_code: typeof r.test_setup_code === 'string' ? r.test_setup_code : '' };
}

const mbpp: TaskDef = {
  name: 'mbpp',
  metric: 'pass@1',
  kind: 'code',
  defaultData: () => join(sharedDir(), 'data', 'mbpp', 'mbpp.jsonl'),
  defaultMaxNewTokens: 512,
  maxShots: 3,
  load(path, split = 'test') {
    const range = MBPP_SPLITS[split];
    if (!range) throw new MixtuneError(`--split: expected one of ${Object.keys(MBPP_SPLITS).join(', ')}, got '${split}'`);
    const all = readJsonl(path).map((r, i) => ({ id: String(asMbpp(r, `${path}: line ${i + 1}`).task_id), record: r }));
    return checkUniqueIds(all.filter((it) => (it.record.task_id as number) >= range[0] && (it.record.task_id as number) <= range[1]), path);
  },
  messages(item, o, dataPath) {
    const msgs: ChatMessage[] = [];
    if (o.system !== undefined) msgs.push({ role: 'system', content: o.system });
    if (o.shots > 0) {
      const all = readJsonlCached(dataPath);
      for (const id of MBPP_SHOT_IDS.slice(0, o.shots)) {
        const r = all.find((x) => x.task_id === id);
        if (!r) throw new MixtuneError(`${dataPath}: --shots needs MBPP task ${id} (a few-shot example) in the data file`);
        const ex = asMbpp(r, `${dataPath}: task ${id}`);
        msgs.push({ role: 'user', content: mbppUser(ex) });
        msgs.push({ role: 'assistant', content: '```python\n' + ex.code.replace(/\r\n/g, '\n').trim() + '\n```' });
      }
    }
    msgs.push({ role: 'user', content: mbppUser(item.record as unknown as MbppItem) });
    return msgs;
  },
  async score(item, response, o) {
    const it = item.record as unknown as MbppItem;
    const code = extractCode(response);
    const full = { ...it, test_setup_code: it.test_setup_code ?? '' };
    const r = await runFunctionTests({
      solution: code, tests: [full.test_setup_code, ...it.test_list].join('\n'), entries: mbppEntries(full), check: false, program: mbppProgram(full, code),
    }, o.sandbox);
    return { correct: r.passed, fields: { code, status: r.status, reason: r.reason, verdict: r.verdict, seconds: Math.round(r.seconds * 1000) / 1000 } };
  },
};

// ---------------------------------------------------------------------------------------------
// HumanEval

export const HUMANEVAL_INSTRUCTION =
  'Complete the following Python function. Reply with the complete function (signature included) in a single ```python code block.';

const humaneval: TaskDef = {
  name: 'humaneval',
  metric: 'pass@1',
  kind: 'code',
  defaultData: () => join(sharedDir(), 'data', 'humaneval', 'HumanEval.jsonl.gz'),
  defaultMaxNewTokens: 512,
  maxShots: 0,
  load(path) {
    return checkUniqueIds(readJsonl(path).map((r, i) => {
      const where = `${path}: line ${i + 1}`;
      for (const f of ['task_id', 'prompt', 'test', 'entry_point']) str(r, f, where);
      return { id: r.task_id as string, record: r };
    }), path);
  },
  messages(item, o) {
    const msgs: ChatMessage[] = [];
    if (o.system !== undefined) msgs.push({ role: 'system', content: o.system });
    msgs.push({ role: 'user', content: `${HUMANEVAL_INSTRUCTION}\n\n\`\`\`python\n${item.record.prompt as string}\`\`\`` });
    return msgs;
  },
  async score(item, response, o) {
    const it = item.record as unknown as HumanEvalItem;
    const code = extractCode(response, it.entry_point);
    // the trusted side runs the dataset's own prompt (its helper functions) and tests, never the completion
    const r = await runFunctionTests({
      solution: humanevalSolution(it, code), tests: `${it.prompt}\n${it.test}`, entries: [it.entry_point], check: true, program: humanevalProgram(it, code),
    }, o.sandbox);
    return { correct: r.passed, fields: { code, status: r.status, reason: r.reason, verdict: r.verdict, seconds: Math.round(r.seconds * 1000) / 1000 } };
  },
};

export const TASKS: Record<TaskName, TaskDef> = { gsm8k, math, mbpp, humaneval };
