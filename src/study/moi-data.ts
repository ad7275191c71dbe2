// Synthetic four-domain data for the MoI study (`mixtune study moi`): chat (answer a question
// about a one-sentence story by copying the right word), code (a one-line python function from a
// small family, checked by running it), math (small-number arithmetic, exact final number) and
// tool (a JSON tool call, checked against a schema and the expected values). Everything is built
// from words the stories260K vocabulary knows (anything else falls back to bytes). Generation is
// seeded; train and test items are disjoint by construction (each domain's item space is
// enumerated, shuffled, and cut: a test item never occurs in train).
import { Rng } from '../util/rng.js';

export const MOI_DOMAINS = ['chat', 'code', 'math', 'tool'] as const;
export type MoiDomain = (typeof MOI_DOMAINS)[number];

export interface MoiItem {
  domain: MoiDomain;
  /** Unique key of the underlying item (the split is by key). */
  key: string;
  prompt: string;
  /** The reference response (the training target; the checker accepts it). */
  answer: string;
  /** What the checker needs. */
  check: ChatCheck | CodeCheck | MathCheck | ToolCheck;
}

export interface ChatCheck { kind: 'chat'; expected: string }
export interface CodeCheck { kind: 'code'; entry: string; op: CodeOp; swap: boolean }
export interface MathCheck { kind: 'math'; value: number }
export interface ToolCheck { kind: 'tool'; name: string; arguments: Record<string, string | number> }

/** Short per-domain system prompts of the study (MoI's per-domain pools). */
export const STUDY_SYSTEM_PROMPTS: Record<MoiDomain, string[]> = {
  chat: ['You are a friendly chat assistant.', 'Read the story and answer the question.', 'You are a kind helper. Answer in one sentence.', 'Answer questions about the story.'],
  code: ['You are an expert python programmer.', 'Write correct python code.', 'You are a coding assistant. Reply with code only.', 'You write short python functions.'],
  math: ['You are a math expert.', 'Solve the sum exactly.', 'You are a careful calculator.', 'Give the exact answer to the math problem.'],
  tool: ['You can call tools. Reply with a JSON tool call.', 'You are a function calling assistant.', 'Answer with one tool call in JSON.', 'You are an agent that uses tools.'],
};

/**
 * Held-out system prompts (`study moi --eval-prompts K` evaluates under the first K of each domain):
 * no training example of any configuration uses them — they are disjoint from the study's training
 * pools above, from the default prompt and from the recipe's built-in pools (test/study-moi.test.ts
 * checks it). Prompt k of the evaluation is the k-th prompt of each domain's list.
 */
export const STUDY_HELDOUT_SYSTEM_PROMPTS: Record<MoiDomain, string[]> = {
  chat: ['You answer questions about short stories.', 'Be a good reader and answer the question.', 'You are a storyteller who answers questions.', 'Reply to the question in one sentence.', 'You are a patient helper for children.', 'Look at the story and tell the answer.', 'You are a nice assistant who reads stories.', 'Answer the question with a full sentence.'],
  code: ['You are a python developer.', 'Write a python function that does the task.', 'You are a programming assistant.', 'Reply with a short python function.', 'You are good at writing code.', 'Solve the task in python.', 'You are a software engineer who writes python.', 'Give only the python code.'],
  math: ['You are good at arithmetic.', 'Compute the answer.', 'You are a helpful math tutor.', 'Work out the sum and give the number.', 'You are a calculator.', 'Add or subtract the numbers.', 'You are a teacher who knows numbers.', 'Tell the result of the sum.'],
  tool: ['You are an assistant with tools.', 'Use a tool to answer.', 'You call functions in JSON.', 'Reply with a tool call.', 'You are a helpful agent.', 'Pick the right tool and call it.', 'You are a bot that can use functions.', 'Answer by calling one tool.'],
};

const NAMES = ['Tom', 'Lily', 'Ben', 'Mia', 'Sam', 'Anna', 'Max', 'Lucy', 'Jack', 'Emma', 'Tim', 'Sue', 'Bob', 'Amy', 'Joe', 'Kim'];
const COLORS = ['red', 'blue', 'green', 'yellow', 'pink', 'purple', 'brown', 'black', 'white', 'orange'];
const OBJECTS = ['ball', 'kite', 'hat', 'car', 'cup', 'box', 'bike', 'boat', 'book', 'toy'];
const PLACES = ['park', 'shop', 'beach', 'school', 'zoo', 'lake', 'farm', 'forest', 'garden', 'house'];
const PETS = ['cat', 'dog', 'bird', 'fish', 'frog', 'duck', 'bunny', 'horse'];

const FUNC_NAMES = ['add', 'sub', 'mul', 'calc', 'mix', 'work', 'apply', 'solve', 'combine', 'make', 'get', 'run', 'do', 'go', 'fun', 'play'];
const ARG_PAIRS: [string, string][] = [['a', 'b'], ['x', 'y'], ['m', 'n'], ['p', 'q']];
export type CodeOp = 'plus' | 'minus' | 'times';
const CODE_OPS: Record<CodeOp, string> = { plus: '+', minus: '-', times: '*' };

const CITIES = ['Paris', 'London', 'Rome', 'Tokyo', 'Berlin', 'Madrid', 'Cairo', 'Lima', 'Oslo', 'Dublin', 'Vienna', 'Prague', 'Boston', 'Sydney', 'Delhi', 'Seoul'];

/** Tool schemas: required arguments and their JSON types. */
export const TOOLS: Record<string, Record<string, 'string' | 'integer'>> = {
  get_weather: { city: 'string' },
  get_time: { city: 'string' },
  set_timer: { minutes: 'integer' },
  call_friend: { name: 'string' },
};
const TOOL_REQUESTS: Record<string, string[]> = {
  get_weather: ['What is the weather like in {v}?', 'Will it rain in {v} today?', 'Tell me the weather in {v}.'],
  get_time: ['What time is it in {v}?', 'Tell me the time in {v}.', 'What is the time now in {v}?'],
  set_timer: ['Set a timer for {v} minutes.', 'Please start a {v} minute timer.', 'Remind me in {v} minutes.'],
  call_friend: ['Call {v} for me.', 'Please phone {v}.', 'I want to talk to {v}, call them.'],
};

// ---- item spaces (every possible item of a domain, in a fixed order) ----------------------------

function chatItems(): MoiItem[] {
  const out: MoiItem[] = [];
  // Color of one of two objects (the other is a distractor with another color).
  for (const name of NAMES) {
    for (let o1 = 0; o1 < OBJECTS.length; o1++) {
      const o2 = (o1 + 3) % OBJECTS.length;
      for (let c = 0; c < COLORS.length; c++) {
        const c1 = COLORS[c]!;
        const c2 = COLORS[(c + 4) % COLORS.length]!;
        for (const ask of [0, 1]) {
          const obj = ask === 0 ? OBJECTS[o1]! : OBJECTS[o2]!;
          const col = ask === 0 ? c1 : c2;
          out.push(mkChat(`color|${name}|${OBJECTS[o1]}|${c1}|${ask}`, `${name} has a ${c1} ${OBJECTS[o1]} and a ${c2} ${OBJECTS[o2]}. What color is the ${obj}?`, `The ${obj} is ${col}.`));
        }
      }
    }
  }
  // Where someone went.
  for (const name of NAMES) {
    for (const place of PLACES) {
      out.push(mkChat(`place|${name}|${place}`, `${name} went to the ${place} with mom. Where did ${name} go?`, `${name} went to the ${place}.`));
    }
  }
  // Which pet someone has.
  for (const name of NAMES) {
    for (const pet of PETS) {
      for (const color of COLORS.slice(0, 4)) {
        out.push(mkChat(`pet|${name}|${pet}|${color}`, `${name} has a little ${color} ${pet}. What pet does ${name} have?`, `${name} has a ${pet}.`));
      }
    }
  }
  return out;
}

function mkChat(key: string, prompt: string, answer: string): MoiItem {
  return { domain: 'chat', key, prompt, answer, check: { kind: 'chat', expected: answer } };
}

function codeItems(): MoiItem[] {
  const out: MoiItem[] = [];
  for (const f of FUNC_NAMES) {
    for (const [x, y] of ARG_PAIRS) {
      for (const op of Object.keys(CODE_OPS) as CodeOp[]) {
        for (const swap of [false, true]) {
          const [l, r] = swap ? [y, x] : [x, y];
          out.push({
            domain: 'code', key: `${f}|${x}${y}|${op}|${swap}`,
            prompt: `Write a python function ${f}(${x}, ${y}) that returns ${l} ${op} ${r}.`,
            answer: `def ${f}(${x}, ${y}):\n    return ${l} ${CODE_OPS[op]} ${r}`,
            check: { kind: 'code', entry: f, op, swap },
          });
        }
      }
    }
  }
  return out;
}

function mathItems(): MoiItem[] {
  const out: MoiItem[] = [];
  for (let a = 0; a <= 12; a++) {
    for (let b = 0; b <= 12; b++) {
      out.push(mkMath(a, 'plus', b, a + b));
      if (b <= a) out.push(mkMath(a, 'minus', b, a - b));
    }
  }
  return out;
}

function mkMath(a: number, op: string, b: number, v: number): MoiItem {
  return { domain: 'math', key: `${a}|${op}|${b}`, prompt: `What is ${a} ${op} ${b}?`, answer: `${a} ${op} ${b} is ${v}.`, check: { kind: 'math', value: v } };
}

function toolItems(): MoiItem[] {
  const out: MoiItem[] = [];
  for (const [name, templates] of Object.entries(TOOL_REQUESTS)) {
    const [argName] = Object.keys(TOOLS[name]!) as [string];
    const values: (string | number)[] = name === 'set_timer' ? Array.from({ length: 60 }, (_, i) => i + 1) : name === 'call_friend' ? NAMES : CITIES;
    templates.forEach((t, ti) => {
      for (const v of values) {
        const args = { [argName]: v };
        out.push({
          domain: 'tool', key: `${name}|${ti}|${v}`,
          prompt: t.replace('{v}', String(v)),
          answer: JSON.stringify({ name, arguments: args }).replace(/":/g, '": ').replace(/,"/g, ', "'),
          check: { kind: 'tool', name, arguments: args },
        });
      }
    });
  }
  return out;
}

const SPACES: Record<MoiDomain, () => MoiItem[]> = { chat: chatItems, code: codeItems, math: mathItems, tool: toolItems };

/** How many distinct items each domain has. */
export function domainCapacity(domain: MoiDomain): number {
  return SPACES[domain]().length;
}

export interface MoiSplit {
  train: MoiItem[];
  test: MoiItem[];
}

/**
 * Seeded train/test split per domain: the item space is shuffled, the first nTest items are the
 * test set and the next nTrain the training set (disjoint keys). When a domain has fewer than
 * nTest + nTrain items the training set is smaller (reported by the caller); nTest must fit.
 */
export function makeMoiData(o: { seed: number; nTrain: number; nTest: number }): Record<MoiDomain, MoiSplit> {
  const out = {} as Record<MoiDomain, MoiSplit>;
  MOI_DOMAINS.forEach((d, di) => {
    const all = SPACES[d]();
    if (o.nTest >= all.length) throw new Error(`moi data: domain ${d} has only ${all.length} items, cannot hold out ${o.nTest}`);
    new Rng((o.seed * 7919 + di * 104729 + 17) >>> 0).shuffle(all);
    out[d] = { test: all.slice(0, o.nTest), train: all.slice(o.nTest, o.nTest + o.nTrain) };
  });
  return out;
}

// ---- checkers --------------------------------------------------------------------------------

function normText(s: string): string {
  return s.trim().toLowerCase().replace(/\s+/g, ' ').replace(/[.!]+$/, '').trim();
}

/** Chat: the response, normalized (case, spaces, final period), equals the reference sentence. */
export function checkChat(response: string, c: ChatCheck): boolean {
  return normText(response) === normText(c.expected);
}

/** Math: the last number in the response equals the exact value. */
export function checkMath(response: string, c: MathCheck): boolean {
  const nums = response.match(/-?\d+(?:\.\d+)?/g);
  if (!nums) return false;
  return Number(nums[nums.length - 1]) === c.value;
}

export interface ToolVerdict {
  /** JSON.parse succeeded and the call matches the schema (known tool, exactly its required args, right types). */
  valid: boolean;
  /** valid, and the tool and argument values are the expected ones. */
  correct: boolean;
  reason: string;
}

/** Tool: the response must be a JSON object {name, arguments} valid against TOOLS and equal to the expected call. */
export function checkTool(response: string, c: ToolCheck): ToolVerdict {
  let v: unknown;
  try {
    v = JSON.parse(response.trim());
  } catch {
    return { valid: false, correct: false, reason: 'not JSON' };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { valid: false, correct: false, reason: 'not an object' };
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o).sort().join(',');
  if (keys !== 'arguments,name') return { valid: false, correct: false, reason: `keys ${keys}` };
  if (typeof o.name !== 'string' || !(o.name in TOOLS)) return { valid: false, correct: false, reason: 'unknown tool' };
  const schema = TOOLS[o.name]!;
  const args = o.arguments;
  if (typeof args !== 'object' || args === null || Array.isArray(args)) return { valid: false, correct: false, reason: 'arguments not an object' };
  const a = args as Record<string, unknown>;
  if (Object.keys(a).sort().join(',') !== Object.keys(schema).sort().join(',')) return { valid: false, correct: false, reason: 'wrong argument names' };
  for (const [k, t] of Object.entries(schema)) {
    const ok = t === 'string' ? typeof a[k] === 'string' : Number.isInteger(a[k]);
    if (!ok) return { valid: false, correct: false, reason: `argument ${k} is not a ${t}` };
  }
  const correct = o.name === c.name && Object.entries(c.arguments).every(([k, val]) => a[k] === val);
  return { valid: true, correct, reason: correct ? '' : 'wrong tool or value' };
}

/** The python test program for a code item: the response's code, then asserts on several inputs. */
export function codeTestProgram(code: string, c: CodeCheck): string {
  const pairs: [number, number][] = [[3, 5], [10, 4], [-2, 7], [6, 6], [0, 9]];
  const f = (x: number, y: number): number => {
    const [l, r] = c.swap ? [y, x] : [x, y];
    return c.op === 'plus' ? l + r : c.op === 'minus' ? l - r : l * r;
  };
  const asserts = pairs.map(([x, y]) => `assert ${c.entry}(${x}, ${y}) == ${f(x, y)}`).join('\n');
  return `${code}\n\n${asserts}\n`;
}

/**
 * The same check without python, for the family's one-line functions: parses
 * `def NAME(A, B):\n    return L OP R` and evaluates it. Used to cross-check the sandbox in tests
 * and as a fast path; the study uses the real sandbox.
 */
export function checkCodeStatic(response: string, c: CodeCheck): boolean {
  const m = response.trim().match(/^def\s+([A-Za-z_]\w*)\s*\(\s*([A-Za-z_]\w*)\s*,\s*([A-Za-z_]\w*)\s*\)\s*:\s*\n\s+return\s+([A-Za-z_]\w*)\s*([+\-*])\s*([A-Za-z_]\w*)\s*$/);
  if (!m || m[1] !== c.entry) return false;
  const [, , p1, p2, l, op, r] = m as unknown as [string, string, string, string, string, string, string];
  if (p1 === p2) return false;
  const val = (name: string, x: number, y: number): number | null => (name === p1 ? x : name === p2 ? y : null);
  for (const [x, y] of [[3, 5], [10, 4], [-2, 7]] as [number, number][]) {
    const lv = val(l, x, y);
    const rv = val(r, x, y);
    if (lv === null || rv === null) return false;
    const got = op === '+' ? lv + rv : op === '-' ? lv - rv : lv * rv;
    const [el, er] = c.swap ? [y, x] : [x, y];
    const want = c.op === 'plus' ? el + er : c.op === 'minus' ? el - er : el * er;
    if (got !== want) return false;
  }
  return true;
}

/** A JSONL record (OpenAI messages format) for mixtune's readers. */
export function itemRecord(it: MoiItem): { id: string; messages: { role: string; content: string }[] } {
  return { id: `${it.domain}:${it.key}`, messages: [{ role: 'user', content: it.prompt }, { role: 'assistant', content: it.answer }] };
}
