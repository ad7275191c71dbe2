// Answer extraction and equivalence for GSM8K and MATH(-500).
//
// GSM8K: the answer is the number after the last "####" (the dataset's own format); without one,
// the content of the last \boxed{}, then "the answer is N", then the last number in the text.
// Numbers are compared numerically after removing "$", thousands separators and a trailing ".".
//
// MATH: the answer is the content of the last \boxed{...} / \fbox{...} (nested braces; also
// "\boxed 5"), else Minerva's "Final Answer: The final answer is X. I hope it is correct.", else
// "the answer is X". Equivalence follows Hendrycks et al.'s MATH `is_equiv` (`strip_string`:
// \dfrac/\tfrac -> \frac, \frac12 -> \frac{1}{2}, \sqrt3 -> \sqrt{3}, a/b -> \frac{a}{b}, no
// \left/\right, ^\circ, \$, \%, "\text{ units}", spaces, "x = " prefixes, .5 -> 0.5, 0.5 -> \frac12)
// plus ideas of PRM800K's grader / Minerva's normalize_final_answer: \text{..}/\textbf{..}/\mbox{..}
// unwrapped, common unit words dropped after a number, thousands separators, trailing ".",
// \! \, \; spacing, numeric comparison of plain numbers and numeric fractions (relative 1e-9), and
// element-wise comparison of tuples / intervals / lists with the same brackets.

// ---------------------------------------------------------------------------------------------
// GSM8K

const NUMBER_RE = /-?\$?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+/g;

/** "$1,234.50" -> "1234.50"; "18." -> "18"; null when no number is left. */
export function cleanNumber(s: string): string | null {
  let t = s.trim().replace(/\$/g, '').replace(/\s+/g, '');
  t = t.replace(/,(?=\d{3}(?:\D|$))/g, '');
  t = t.replace(/\.$/, '');
  if (!/^-?(?:\d+(?:\.\d*)?|\.\d+)$/.test(t)) return null;
  return t;
}

function lastNumber(text: string): string | null {
  const all = text.match(NUMBER_RE);
  if (!all || all.length === 0) return null;
  return cleanNumber(all[all.length - 1]!);
}

function firstNumber(text: string): string | null {
  const m = text.match(NUMBER_RE);
  return m ? cleanNumber(m[0]) : null;
}

/** The reference answer of a GSM8K record: the number after "####" in `answer`. */
export function gsm8kReference(answer: string): string | null {
  const i = answer.lastIndexOf('####');
  if (i < 0) return null;
  return cleanNumber(answer.slice(i + 4).trim());
}

export interface Extraction {
  answer: string | null;
  /** How the answer was found. */
  method: 'hash' | 'boxed' | 'answer-is' | 'last-number' | 'final-answer' | 'none';
}

/** The final answer of a GSM8K-style response (see the file comment for the order of rules). */
export function extractGsm8kAnswer(response: string): Extraction {
  const hashes = [...response.matchAll(/####\s*([^\n]*)/g)];
  for (let k = hashes.length - 1; k >= 0; k--) {
    const n = firstNumber(hashes[k]![1]!);
    if (n !== null) return { answer: n, method: 'hash' };
  }
  const boxed = lastBoxed(response);
  if (boxed !== null) {
    const n = firstNumber(boxed.replace(/\\!|\\,|{,}/g, ''));
    if (n !== null) return { answer: n, method: 'boxed' };
  }
  const is = [...response.matchAll(/answer is[:\s]*([^\n]*)/gi)];
  for (let k = is.length - 1; k >= 0; k--) {
    const n = firstNumber(is[k]![1]!);
    if (n !== null) return { answer: n, method: 'answer-is' };
  }
  const n = lastNumber(response);
  return n !== null ? { answer: n, method: 'last-number' } : { answer: null, method: 'none' };
}

/** Numeric equality of two cleaned numbers (exact for integers, relative 1e-9 otherwise). */
export function gsm8kEquiv(pred: string | null, ref: string | null): boolean {
  if (pred === null || ref === null) return false;
  const a = Number(pred);
  const b = Number(ref);
  if (!Number.isFinite(a) || !Number.isFinite(b)) return pred === ref;
  return a === b || Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));
}

// ---------------------------------------------------------------------------------------------
// MATH: \boxed extraction

/** Index just after the '}' matching the '{' at `open`, or -1. */
function matchBrace(s: string, open: number): number {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    const c = s[i];
    if (c === '\\' && (s[i + 1] === '{' || s[i + 1] === '}')) {
      i++; // escaped brace \{ \}: not structural
      continue;
    }
    if (c === '{') depth++;
    else if (c === '}') {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}

/**
 * The content of the last \boxed{...} or \fbox{...} in `text` (nested braces handled), or of
 * "\boxed X" (up to "$" or the end of the line); null when there is none or it is unclosed.
 */
export function lastBoxed(text: string): string | null {
  const re = /\\(?:boxed|fbox)(?![a-zA-Z])/g;
  let last = -1;
  let lastLen = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    last = m.index;
    lastLen = m[0].length;
  }
  if (last < 0) return null;
  let i = last + lastLen;
  while (i < text.length && text[i] === ' ') i++;
  if (text[i] === '{') {
    const end = matchBrace(text, i);
    if (end < 0) return null;
    return text.slice(i + 1, end - 1);
  }
  if (i === last + lastLen) return null; // "\boxed" directly followed by something else
  const rest = text.slice(i);
  const stop = rest.search(/[$\n]/);
  const content = (stop < 0 ? rest : rest.slice(0, stop)).trim();
  return content === '' ? null : content;
}

/** The final answer of a MATH-style response (see the file comment). */
export function extractMathAnswer(response: string): Extraction {
  const boxed = lastBoxed(response);
  if (boxed !== null) return { answer: boxed, method: 'boxed' };
  const fa = [...response.matchAll(/final answer is\s*(.+?)\.?\s*I hope it is correct/gi)];
  if (fa.length > 0) return { answer: stripDollars(fa[fa.length - 1]![1]!), method: 'final-answer' };
  const is = [...response.matchAll(/answer is[:\s]*([^\n]+)/gi)];
  if (is.length > 0) {
    let a = is[is.length - 1]![1]!.trim();
    const dollars = a.match(/^\$([^$]+)\$/);
    if (dollars) a = dollars[1]!;
    else a = a.replace(/\.$/, '');
    return { answer: a.trim(), method: 'answer-is' };
  }
  return { answer: null, method: 'none' };
}

function stripDollars(s: string): string {
  const t = s.trim();
  const m = t.match(/^\$+([\s\S]*?)\$+$/);
  return (m ? m[1]! : t).trim();
}

// ---------------------------------------------------------------------------------------------
// MATH: normalization (Hendrycks' strip_string + extras)

function fixFracs(s: string): string {
  const parts = s.split('\\frac');
  let out = parts[0]!;
  for (const sub of parts.slice(1)) {
    out += '\\frac';
    if (sub.length > 0 && sub[0] === '{') {
      out += sub;
      continue;
    }
    if (sub.length < 2) return s;
    const a = sub[0]!;
    const b = sub[1]!;
    if (b !== '{') out += `{${a}}{${b}}` + sub.slice(2);
    else out += `{${a}}` + b + sub.slice(2);
  }
  return out;
}

function fixSqrt(s: string): string {
  return s.replace(/\\sqrt(?![a-zA-Z{\[])\s*([^\s{\[])/g, (_, a: string) => `\\sqrt{${a}}`);
}

function fixASlashB(s: string): string {
  const m = s.match(/^(-?\d+)\/(-?\d+)$/);
  if (!m) return s;
  return `\\frac{${Number(m[1])}}{${Number(m[2])}}`;
}

/** \text{..}, \textbf{..}, \mbox{..}, \mathrm{..}, \textrm{..}, \mathbf{..}: the content. */
function unwrapText(s: string): string {
  const re = /\\(?:text|textbf|textit|textrm|mbox|mathrm|mathbf|rm|operatorname|boxed)\s*\{/g;
  let out = '';
  let pos = 0;
  for (let m = re.exec(s); m !== null; m = re.exec(s)) {
    const open = m.index + m[0].length - 1;
    const end = matchBrace(s, open);
    if (end < 0) break;
    out += s.slice(pos, m.index) + unwrapText(s.slice(open + 1, end - 1));
    pos = end;
    re.lastIndex = end;
  }
  return out + s.slice(pos);
}

// Unit / filler words dropped after a number (Minerva's normalize_final_answer list, extended).
const UNIT_WORDS = [
  'square', 'sq', 'cubic', 'ways', 'integers', 'dollars', 'dollar', 'mph', 'inches', 'inch', 'in', 'ft', 'feet', 'foot',
  'hours', 'hour', 'hrs', 'km', 'units', 'unit', 'points', 'minutes', 'minute', 'min', 'seconds', 'second', 'sec',
  'digits', 'cents', 'cent', 'degrees', 'degree', 'cm', 'mm', 'm', 'gm', 'g', 'kg', 'pounds', 'pound', 'lbs', 'meters',
  'meter', 'miles', 'mile', 'meals', 'edges', 'students', 'people', 'days', 'day', 'weeks', 'years', 'yards', 'cups',
  'liters', 'ounces', 'percent', 'times', 'numbers', 'cm^2', 'm^2', 'ft^2', 'in^2', 'cm^3', 'm^3', 'ft^3', 'in^3',
  'inches^2', 'feet^2', 'units^2', 'sqft',
];
const UNIT_RE = new RegExp(`^(.*?\\d[^a-zA-Z]*?)\\s*(?:\\b(?:${UNIT_WORDS.map((w) => w.replace(/\^/g, '\\^')).join('|')})\\b\\s*)+(\\^\\{?\\d\\}?)?$`);

/** Hendrycks' strip_string with extensions; the result is compared as a string (see mathEquiv). */
export function normalizeMathAnswer(input: string): string {
  let s = input;
  s = s.replace(/\n/g, '');
  s = s.replace(/\\!/g, '');
  s = s.replace(/\\[,;:> ]/g, ' ');
  s = s.replace(/\\\\/g, '\\');
  s = s.replace(/\\displaystyle/g, '');
  s = s.replace(/tfrac/g, 'frac').replace(/dfrac/g, 'frac');
  s = s.replace(/\\left(?![a-zA-Z])/g, '').replace(/\\right(?![a-zA-Z])/g, '');
  s = s.replace(/\^\s*\{\s*\\circ\s*\}/g, '').replace(/\^\s*\\circ/g, '').replace(/°/g, '');
  s = s.replace(/\\\$/g, '').replace(/\$/g, '');
  // Hendrycks: "\text{ " only ever introduces units on the right.
  const unitIdx = s.indexOf('\\text{ ');
  if (unitIdx > 0) s = s.slice(0, unitIdx);
  s = unwrapText(s);
  s = s.replace(/\\%/g, '').replace(/%/g, '');
  s = s.trim();
  // Units after a number ("5 cm", "12 inches^2").
  const u = s.match(UNIT_RE);
  if (u) s = u[1]!.trim();
  s = s.replace(/ \./g, ' 0.').replace(/\{\./g, '{0.');
  if (s.length === 0) return s;
  if (s[0] === '.') s = '0' + s;
  // "k = 5" -> "5" (a short left side only).
  const eq = s.split('=');
  if (eq.length === 2 && eq[0]!.trim().length <= 2) s = eq[1]!;
  s = fixSqrt(s);
  s = s.replace(/ /g, '');
  s = fixFracs(s);
  // Trailing period, thousands separators, leading zeros, trailing zeros of decimals.
  s = s.replace(/\.$/, '');
  if (/^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$/.test(s)) s = s.replace(/,/g, '');
  s = s.replace(/\{,\}/g, '');
  if (/^-?\d+(?:\.\d+)?$/.test(s)) {
    const neg = s.startsWith('-');
    let t = neg ? s.slice(1) : s;
    t = t.replace(/^0+(?=\d)/, '');
    if (t.includes('.')) t = t.replace(/0+$/, '').replace(/\.$/, '');
    s = (neg && t !== '0' ? '-' : '') + t;
  }
  if (s === '0.5') s = '\\frac{1}{2}';
  s = fixASlashB(s);
  // \frac{a}{b} written as \frac ab with braces already fixed; -\frac{a}{b} and \frac{-a}{b} agree.
  s = s.replace(/^\\frac\{-(\d+)\}\{(\d+)\}$/, '-\\frac{$1}{$2}');
  return s;
}

/** The numeric value of a normalized plain number or numeric fraction, else null. */
function numericValue(s: string): number | null {
  if (/^-?\d+(?:\.\d+)?$/.test(s)) return Number(s);
  const f = s.match(/^(-?)\\frac\{(-?\d+(?:\.\d+)?)\}\{(-?\d+(?:\.\d+)?)\}$/);
  if (f) {
    const v = Number(f[2]) / Number(f[3]);
    return Number.isFinite(v) ? (f[1] === '-' ? -v : v) : null;
  }
  return null;
}

/** Splits "a,b,c" at top-level commas (outside (), [], {}). */
function splitTopLevel(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const c of s) {
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') depth--;
    if (c === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

function bracketed(s: string): { open: string; close: string; inner: string } | null {
  if (s.length < 2) return null;
  const open = s[0]!;
  const close = s[s.length - 1]!;
  if (!'([{'.includes(open) || !')]}'.includes(close)) return null;
  // The outer brackets must enclose the whole string.
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if ('([{'.includes(c)) depth++;
    else if (')]}'.includes(c)) depth--;
    if (depth === 0 && i < s.length - 1) return null;
  }
  return { open, close, inner: s.slice(1, -1) };
}

function equivNormalized(a: string, b: string, depth = 0): boolean {
  if (a === b) return true;
  const va = numericValue(a);
  const vb = numericValue(b);
  if (va !== null && vb !== null) return va === vb || Math.abs(va - vb) <= 1e-9 * Math.max(1, Math.abs(va), Math.abs(vb));
  if (depth > 3) return false;
  // Tuples, intervals, sets: the same brackets and element-wise equivalent elements.
  const ba = bracketed(a);
  const bb = bracketed(b);
  if (ba && bb) {
    if (ba.open !== bb.open || ba.close !== bb.close) return false;
    const ea = splitTopLevel(ba.inner);
    const eb = splitTopLevel(bb.inner);
    if (ea.length < 2 && ba.open === '{') return equivNormalized(ba.inner, bb.inner, depth + 1);
    return ea.length === eb.length && ea.every((x, i) => equivNormalized(normalizeMathAnswer(x), normalizeMathAnswer(eb[i]!), depth + 1));
  }
  // Unbracketed lists "1,2,3" (e.g. all solutions).
  if (!ba && !bb && a.includes(',') && b.includes(',')) {
    const ea = splitTopLevel(a);
    const eb = splitTopLevel(b);
    if (ea.length > 1 && ea.length === eb.length) return ea.every((x, i) => equivNormalized(normalizeMathAnswer(x), normalizeMathAnswer(eb[i]!), depth + 1));
  }
  return false;
}

/** Whether a predicted MATH answer is equivalent to the reference (null = no answer = wrong). */
export function mathEquiv(pred: string | null, ref: string | null): boolean {
  if (pred === null || ref === null) return false;
  let a: string;
  let b: string;
  try {
    a = normalizeMathAnswer(pred);
    b = normalizeMathAnswer(ref);
  } catch {
    return pred === ref;
  }
  if (a === '' || b === '') return a === b && pred.trim() === ref.trim();
  return equivNormalized(a, b);
}
