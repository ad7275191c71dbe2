// Python string and `re` semantics that the IFEval reference relies on, emulated in JavaScript.
//
// - whitespace is Python's str.isspace() set (also what `re`'s \s matches on str patterns);
// - \w is Unicode letters, numbers and underscore (Python's str.isalnum() + '_'), \d is Unicode Nd;
// - \b is the boundary between \w and non-\w characters (JS's \b is ASCII-only even with /u);
// - `.` never matches '\n' only (JS's also refuses \r, \u2028, \u2029);
// - `^`/`$` behave like Python's (with MULTILINE: only '\n' starts/ends a line; without it `$` also
//   matches before a final '\n').

/** Python's whitespace characters (str.isspace()), as the inside of a character class. */
export const PY_WS_CLASS = '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
/** Python's \w on str patterns, as the inside of a character class. */
export const PY_WORD_CLASS = '\\p{L}\\p{N}_';

const WS_RE = new RegExp(`[${PY_WS_CLASS}]`, 'u');
const LEAD_WS = new RegExp(`^[${PY_WS_CLASS}]+`, 'u');
const TRAIL_WS = new RegExp(`[${PY_WS_CLASS}]+$`, 'u');
const WS_RUN = new RegExp(`[${PY_WS_CLASS}]+`, 'u');

export function isSpaceChar(ch: string): boolean {
  return WS_RE.test(ch);
}

/** str.strip() with no argument. */
export function pyStrip(s: string): string {
  return s.replace(LEAD_WS, '').replace(TRAIL_WS, '');
}

/** str.lstrip(chars) / str.rstrip(chars) / str.strip(chars) with an explicit character set. */
export function pyLstripChars(s: string, chars: string): string {
  let i = 0;
  while (i < s.length && chars.includes(s[i]!)) i++;
  return s.slice(i);
}
export function pyRstripChars(s: string, chars: string): string {
  let j = s.length;
  while (j > 0 && chars.includes(s[j - 1]!)) j--;
  return s.slice(0, j);
}
export function pyStripChars(s: string, chars: string): string {
  return pyRstripChars(pyLstripChars(s, chars), chars);
}

/** str.split() with no argument: split on runs of whitespace, drop empty pieces. */
export function pySplitWs(s: string): string[] {
  const t = pyStrip(s);
  return t === '' ? [] : t.split(WS_RUN);
}

const LOWER = /\p{Lowercase}/u;
const UPPER = /\p{Uppercase}/u;
const TITLE = /\p{Lt}/u;

/** str.isupper(): at least one cased character and no lowercase (or titlecase) one. */
export function pyIsUpper(s: string): boolean {
  let cased = false;
  for (const ch of s) {
    if (LOWER.test(ch) || TITLE.test(ch)) return false;
    if (!cased && UPPER.test(ch)) cased = true;
  }
  return cased;
}

/** str.islower(): at least one cased character and no uppercase (or titlecase) one. */
export function pyIsLower(s: string): boolean {
  let cased = false;
  for (const ch of s) {
    if (UPPER.test(ch) || TITLE.test(ch)) return false;
    if (!cased && LOWER.test(ch)) cased = true;
  }
  return cased;
}

/** str.lower() (Unicode full case mapping; JS applies the same mapping incl. final sigma). */
export function pyLower(s: string): string {
  return s.toLowerCase();
}

/** Python string length (code points). */
export function pyLen(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

export interface PyReFlags {
  ignoreCase?: boolean;
  multiline?: boolean;
  dotAll?: boolean;
}

const SYNTAX = new Set(['^', '$', '\\', '.', '*', '+', '?', '(', ')', '[', ']', '{', '}', '|', '/']);
const W = `[${PY_WORD_CLASS}]`;
const NW = `[^${PY_WORD_CLASS}]`;
const B_EMU = `(?:(?<=${W})(?!${W})|(?<!${W})(?=${W}))`;
const NB_EMU = `(?:(?<=${W})(?=${W})|(?<!${W})(?!${W}))`;

function hexEscape(ch: string): string {
  return `\\u{${ch.codePointAt(0)!.toString(16)}}`;
}

/**
 * Translates a Python `re` pattern (str, Unicode) into an equivalent JavaScript RegExp (flag 'u').
 * Covers the syntax the IFEval checks and ordinary keyword patterns use: classes, escapes,
 * quantifiers, groups (incl. (?P<name>...), (?:...), lookarounds), anchors, \A \Z \b \B \d \s \w.
 */
export function pyRegex(pattern: string, flags: PyReFlags = {}, global = false): RegExp {
  let out = '';
  let i = 0;
  let inClass = false;
  let ignoreCase = !!flags.ignoreCase;
  let multiline = !!flags.multiline;
  let dotAll = !!flags.dotAll;
  // leading inline flags, e.g. (?i) or (?im)
  const inl = /^\(\?([aiLmsux]+)\)/.exec(pattern);
  if (inl) {
    for (const f of inl[1]!) {
      if (f === 'i') ignoreCase = true;
      if (f === 'm') multiline = true;
      if (f === 's') dotAll = true;
    }
    i = inl[0].length;
  }
  const n = pattern.length;
  while (i < n) {
    const c = pattern[i]!;
    if (c === '\\') {
      const d = pattern[i + 1];
      if (d === undefined) throw new Error(`bad escape (end of pattern) in ${JSON.stringify(pattern)}`);
      i += 2;
      switch (d) {
        case 'w': out += inClass ? PY_WORD_CLASS : W; continue;
        case 'W': out += inClass ? '\\W' : NW; continue;
        case 's': out += inClass ? PY_WS_CLASS : `[${PY_WS_CLASS}]`; continue;
        case 'S': out += inClass ? '\\S' : `[^${PY_WS_CLASS}]`; continue;
        case 'd': out += '\\p{Nd}'; continue;
        case 'D': out += '\\P{Nd}'; continue;
        case 'b': out += inClass ? '\\x08' : B_EMU; continue;
        case 'B': out += NB_EMU; continue;
        case 'A': out += '(?<![\\s\\S])'; continue;
        case 'Z': out += '(?![\\s\\S])'; continue;
        case 'n': case 't': case 'r': case 'f': case 'v': out += '\\' + d; continue;
        case 'a': out += '\\x07'; continue;
        case 'x': out += '\\x' + pattern.slice(i, i + 2); i += 2; continue;
        case 'u': out += '\\u' + pattern.slice(i, i + 4); i += 4; continue;
        case 'U': out += `\\u{${pattern.slice(i, i + 8).replace(/^0+(?=.)/, '')}}`; i += 8; continue;
        case '0': out += '\\x00'; continue;
        default:
          if (/[1-9]/.test(d)) { out += '\\' + d; continue; }
          if (/[A-Za-z]/.test(d)) throw new Error(`bad escape \\${d} in ${JSON.stringify(pattern)}`);
          if (SYNTAX.has(d) || (inClass && d === '-')) out += '\\' + d;
          else out += hexEscape(d);
          continue;
      }
    }
    if (inClass) {
      if (c === ']') inClass = false;
      if (c === '[' ) { out += '\\['; i++; continue; }
      out += c;
      i++;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += '[';
      i++;
      if (pattern[i] === '^') { out += '^'; i++; }
      if (pattern[i] === ']') { out += '\\]'; i++; } // a leading ']' is literal in Python
      continue;
    }
    if (c === '.') { out += dotAll ? '[\\s\\S]' : '[^\\n]'; i++; continue; }
    if (c === '^') { out += multiline ? '(?<![^\\n])' : '(?<![\\s\\S])'; i++; continue; }
    if (c === '$') { out += multiline ? '(?![^\\n])' : '(?=\\n?(?![\\s\\S]))'; i++; continue; }
    if (c === '{') {
      const q = /^\{(\d*)(,(\d*))?\}/.exec(pattern.slice(i));
      if (q && (q[1] !== '' || (q[2] !== undefined && q[3] !== ''))) {
        out += q[1] === '' ? `{0${q[2] ?? ''}}` : q[0];
        i += q[0].length;
      } else { out += '\\{'; i++; }
      continue;
    }
    if (c === '}') { out += '\\}'; i++; continue; }
    if (c === '(' && pattern.startsWith('(?P<', i)) { out += '(?<'; i += 4; continue; }
    if (c === '(' && pattern.startsWith('(?P=', i)) {
      const end = pattern.indexOf(')', i);
      out += `\\k<${pattern.slice(i + 4, end)}>`;
      i = end + 1;
      continue;
    }
    if (c === '(' && pattern.startsWith('(?#', i)) { i = pattern.indexOf(')', i) + 1; continue; }
    out += c;
    i++;
  }
  return new RegExp(out, 'u' + (ignoreCase ? 'i' : '') + (global ? 'g' : ''));
}

/** re.search(pattern, s, flags) is not None. */
export function pySearch(pattern: string | RegExp, s: string, flags: PyReFlags = {}): boolean {
  const re = typeof pattern === 'string' ? pyRegex(pattern, flags) : pattern;
  re.lastIndex = 0;
  return re.test(s);
}

/** re.findall(pattern, s, flags): the whole matches (non-overlapping, left to right; empty matches allowed). */
export function pyFindAll(pattern: string | RegExp, s: string, flags: PyReFlags = {}): string[] {
  const re = typeof pattern === 'string' ? pyRegex(pattern, flags, true) : new RegExp(pattern.source, pattern.flags.includes('g') ? pattern.flags : pattern.flags + 'g');
  const out: string[] = [];
  for (const m of s.matchAll(re)) out.push(m[0]);
  return out;
}

/** re.split(pattern, s) without capture groups (pieces only). */
export function pySplit(pattern: string | RegExp, s: string, flags: PyReFlags = {}): string[] {
  const re = typeof pattern === 'string' ? pyRegex(pattern, flags, true) : new RegExp(pattern.source, pattern.flags.includes('g') ? pattern.flags : pattern.flags + 'g');
  const out: string[] = [];
  let last = 0;
  for (const m of s.matchAll(re)) {
    out.push(s.slice(last, m.index));
    last = m.index! + m[0].length;
  }
  out.push(s.slice(last));
  return out;
}

/** re.sub(pattern, repl, s) with a Python replacement template (\1, \g<0>, \g<name>). */
export function pySub(re: RegExp, repl: string, s: string): string {
  const g = re.flags.includes('g') ? re : new RegExp(re.source, re.flags + 'g');
  const nGroups = new RegExp('|' + re.source, re.flags.replace('g', '')).exec('')!.length - 1;
  return s.replace(g, (...args: unknown[]) => {
    const groups = args.slice(0, nGroups + 1) as (string | undefined)[];
    return repl.replace(/\\(\d+)|\\g<(\d+)>/g, (_m, a: string | undefined, b: string | undefined) => groups[Number(a ?? b)] ?? '');
  });
}

/**
 * Python's json.loads acceptance: standard JSON plus NaN, Infinity and -Infinity as values.
 * Returns true iff the text would parse.
 */
export function pyJsonParses(text: string): boolean {
  let i = 0;
  const s = text;
  const ws = (): void => { while (i < s.length && (s[i] === ' ' || s[i] === '\t' || s[i] === '\n' || s[i] === '\r')) i++; };
  const fail = (): never => { throw new SyntaxError('json'); };
  const value = (depth: number): void => {
    if (depth > 900) fail(); // Python's recursion limit would stop deeper nesting too
    ws();
    const c = s[i];
    if (c === '{') {
      i++; ws();
      if (s[i] === '}') { i++; return; }
      for (;;) {
        ws();
        if (s[i] !== '"') fail();
        str();
        ws();
        if (s[i] !== ':') fail();
        i++;
        value(depth + 1);
        ws();
        if (s[i] === ',') { i++; continue; }
        if (s[i] === '}') { i++; return; }
        fail();
      }
    }
    if (c === '[') {
      i++; ws();
      if (s[i] === ']') { i++; return; }
      for (;;) {
        value(depth + 1);
        ws();
        if (s[i] === ',') { i++; continue; }
        if (s[i] === ']') { i++; return; }
        fail();
      }
    }
    if (c === '"') { str(); return; }
    for (const lit of ['true', 'false', 'null', 'NaN', 'Infinity', '-Infinity']) {
      if (s.startsWith(lit, i)) { i += lit.length; return; }
    }
    const m = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?/.exec(s.slice(i, i + 400));
    if (!m || m[0] === '' || m[0] === '-') fail();
    i += m![0].length;
  };
  const str = (): void => {
    i++; // opening quote
    for (;;) {
      if (i >= s.length) fail();
      const c = s.charCodeAt(i);
      if (c === 0x22) { i++; return; }
      if (c < 0x20) fail(); // strict mode: no control characters inside strings
      if (c === 0x5c) {
        const e = s[i + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(s.slice(i + 2, i + 6))) fail();
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else fail();
        continue;
      }
      i++;
    }
  };
  try {
    value(0);
    ws();
    return i === s.length;
  } catch {
    return false;
  }
}
