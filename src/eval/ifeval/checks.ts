// The 25 IFEval instruction checks (../shared/specs/ifeval.md), following the reference checker's
// Python semantics decision by decision. A check receives the response and the instruction's kwargs
// and says whether the instruction is followed; strict/loose wrapping is in score.ts.
import {
  pyFindAll, pyIsLower, pyIsUpper, pyJsonParses, pyLen, pyLower, pyLstripChars, pyRegex,
  pySearch, pySplit, pySplitWs, pyStrip, pyStripChars,
} from './py.js';
import { countSentences, countWords, wordTokenize } from './nltk.js';

export type Kwargs = Record<string, unknown>;

/** The pluggable NLP parts (language detection, sentence counting, word tokenization). */
export interface CheckContext {
  /** The top language code; throws when the text has no features (then the check passes). */
  detectLanguage(text: string): string;
  countSentences(text: string): number;
  wordTokenize(text: string): string[];
}

export interface InstructionCheck {
  id: string;
  /** kwargs the check reads (for validation and flattened input). */
  args: readonly string[];
  /** Which NLP parts the decision depends on (these ids may disagree with the reference). */
  dependsOn?: 'language' | 'sentences' | 'tokenization';
  check(response: string, kw: Kwargs, ctx: CheckContext): boolean;
}

export class KwargsError extends Error {}

function num(kw: Kwargs, key: string): number {
  const v = kw[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new KwargsError(`kwargs.${key} must be a number (got ${JSON.stringify(v)})`);
  return v;
}
function str(kw: Kwargs, key: string): string {
  const v = kw[key];
  if (typeof v !== 'string') throw new KwargsError(`kwargs.${key} must be a string (got ${JSON.stringify(v)})`);
  return v;
}
function strList(kw: Kwargs, key: string): string[] {
  const v = kw[key];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new KwargsError(`kwargs.${key} must be a list of strings (got ${JSON.stringify(v)})`);
  return v as string[];
}
/** "less than" -> actual < n; "at least" -> actual >= n. */
function relate(actual: number, kw: Kwargs, relKey: string, nKey: string): boolean {
  const rel = str(kw, relKey);
  const n = num(kw, nKey);
  if (rel === 'less than') return actual < n;
  if (rel === 'at least') return actual >= n;
  throw new KwargsError(`kwargs.${relKey} must be "less than" or "at least" (got ${JSON.stringify(rel)})`);
}

const langOr = (ctx: CheckContext, text: string, pred: (lang: string) => boolean): boolean => {
  let lang: string;
  try {
    lang = ctx.detectLanguage(text);
  } catch {
    return true; // the reference counts a detection error (no features) as followed
  }
  return pred(lang);
};

const RE_PARAGRAPHS = pyRegex('\\s?\\*\\*\\*\\s?', {}, true);
const RE_PLACEHOLDER = pyRegex('\\[.*?\\]', {}, true);
const RE_BULLET_STAR = pyRegex('^\\s*\\*[^\\*].*$', { multiline: true }, true);
const RE_BULLET_DASH = pyRegex('^\\s*-.*$', { multiline: true }, true);
const RE_HIGHLIGHT = pyRegex('\\*[^\\n\\*]*\\*', {}, true);
const RE_HIGHLIGHT2 = pyRegex('\\*\\*[^\\n\\*]*\\*\\*', {}, true);
const RE_TITLE = pyRegex('<<[^\\n]+>>', {}, true);
const regexCache = new Map<string, RegExp>();
function cached(pattern: string, flags: { ignoreCase?: boolean; multiline?: boolean }): RegExp {
  const k = `${flags.ignoreCase ? 'i' : ''}${flags.multiline ? 'm' : ''}:${pattern}`;
  let re = regexCache.get(k);
  if (!re) { re = pyRegex(pattern, flags, true); regexCache.set(k, re); }
  return re;
}

const CHECKS: InstructionCheck[] = [
  {
    id: 'keywords:existence', args: ['keywords'],
    check: (r, kw) => strList(kw, 'keywords').every((k) => pySearch(cached(k, { ignoreCase: true }), r)),
  },
  {
    id: 'keywords:frequency', args: ['keyword', 'frequency', 'relation'],
    check: (r, kw) => relate(pyFindAll(cached(pyStrip(str(kw, 'keyword')), { ignoreCase: true }), r).length, kw, 'relation', 'frequency'),
  },
  {
    id: 'keywords:forbidden_words', args: ['forbidden_words'],
    check: (r, kw) => !strList(kw, 'forbidden_words').some((w) => pySearch(cached('\\b' + w + '\\b', { ignoreCase: true }), r)),
  },
  {
    id: 'keywords:letter_frequency', args: ['letter', 'let_frequency', 'let_relation'],
    check: (r, kw) => {
      const letter = pyLower(pyStrip(str(kw, 'letter')));
      let n = 0;
      for (const ch of pyLower(r)) if (ch === letter) n++;
      return relate(n, kw, 'let_relation', 'let_frequency');
    },
  },
  {
    id: 'language:response_language', args: ['language'], dependsOn: 'language',
    check: (r, kw, ctx) => langOr(ctx, r, (l) => l === str(kw, 'language')),
  },
  {
    id: 'length_constraints:number_sentences', args: ['num_sentences', 'relation'], dependsOn: 'sentences',
    check: (r, kw, ctx) => relate(ctx.countSentences(r), kw, 'relation', 'num_sentences'),
  },
  {
    id: 'length_constraints:number_paragraphs', args: ['num_paragraphs'],
    check: (r, kw) => {
      const ps = pySplit(RE_PARAGRAPHS, r);
      let n = ps.length;
      for (let i = 0; i < ps.length; i++) {
        if (pyStrip(ps[i]!) === '') {
          if (i === 0 || i === ps.length - 1) n--;
          else return false;
        }
      }
      return n === num(kw, 'num_paragraphs');
    },
  },
  {
    id: 'length_constraints:number_words', args: ['num_words', 'relation'],
    check: (r, kw) => relate(countWords(r), kw, 'relation', 'num_words'),
  },
  {
    id: 'length_constraints:nth_paragraph_first_word', args: ['num_paragraphs', 'nth_paragraph', 'first_word'],
    check: (r, kw) => {
      const ps = r.split('\n\n');
      const count = ps.filter((p) => pyStrip(p) !== '').length;
      const nth = num(kw, 'nth_paragraph');
      if (!(nth <= count)) return false;
      const para = pyStrip(ps[nth - 1] ?? '');
      if (para === '') return false;
      let word = pyStrip(pySplitWs(para)[0]!);
      word = pyLstripChars(word, "'");
      word = pyLstripChars(word, '"');
      let first = '';
      for (const ch of word) {
        if ('.,?!\'"'.includes(ch)) break;
        first += pyLower(ch);
      }
      return count === num(kw, 'num_paragraphs') && first === pyLower(str(kw, 'first_word'));
    },
  },
  {
    id: 'detectable_content:number_placeholders', args: ['num_placeholders'],
    check: (r, kw) => pyFindAll(RE_PLACEHOLDER, r).length >= num(kw, 'num_placeholders'),
  },
  {
    id: 'detectable_content:postscript', args: ['postscript_marker'],
    check: (r, kw) => {
      const marker = str(kw, 'postscript_marker');
      const pat = marker === 'P.P.S' ? '\\s*p\\.\\s?p\\.\\s?s.*$' : marker === 'P.S.' ? '\\s*p\\.\\s?s\\..*$' : '\\s*' + pyLower(marker) + '.*$';
      return pySearch(cached(pat, { multiline: true }), pyLower(r));
    },
  },
  {
    id: 'detectable_format:number_bullet_lists', args: ['num_bullets'],
    check: (r, kw) => pyFindAll(RE_BULLET_STAR, r).length + pyFindAll(RE_BULLET_DASH, r).length === num(kw, 'num_bullets'),
  },
  {
    id: 'detectable_format:constrained_response', args: [],
    check: (r) => {
      const v = pyStrip(r);
      return ['My answer is yes.', 'My answer is no.', 'My answer is maybe.'].some((c) => v.includes(c));
    },
  },
  {
    id: 'detectable_format:number_highlighted_sections', args: ['num_highlights'],
    check: (r, kw) => {
      let n = 0;
      for (const h of pyFindAll(RE_HIGHLIGHT, r)) if (pyStrip(pyStripChars(h, '*')) !== '') n++;
      for (const h of pyFindAll(RE_HIGHLIGHT2, r)) if (pyStrip(h.slice(2, -2)) !== '') n++;
      return n >= num(kw, 'num_highlights');
    },
  },
  {
    id: 'detectable_format:multiple_sections', args: ['section_spliter', 'num_sections'],
    check: (r, kw) => pySplit(cached('\\s?' + str(kw, 'section_spliter') + '\\s?\\d+\\s?', {}), r).length - 1 >= num(kw, 'num_sections'),
  },
  {
    id: 'detectable_format:json_format', args: [],
    check: (r) => {
      let v = pyStrip(r);
      for (const p of ['```json', '```Json', '```JSON', '```']) if (v.startsWith(p)) v = v.slice(p.length);
      if (v.endsWith('```')) v = v.slice(0, -3);
      return pyJsonParses(pyStrip(v));
    },
  },
  {
    id: 'detectable_format:title', args: [],
    check: (r) => pyFindAll(RE_TITLE, r).some((t) => pyStrip(pyStripRight(pyLstripChars(t, '<'), '>')) !== ''),
  },
  {
    id: 'combination:two_responses', args: [],
    check: (r) => {
      const parts = r.split('******');
      const valid: string[] = [];
      for (let i = 0; i < parts.length; i++) {
        if (pyStrip(parts[i]!) === '') {
          if (i !== 0 && i !== parts.length - 1) return false;
        } else valid.push(parts[i]!);
      }
      return valid.length === 2 && pyStrip(valid[0]!) !== pyStrip(valid[1]!);
    },
  },
  {
    id: 'combination:repeat_prompt', args: ['prompt_to_repeat'],
    check: (r, kw) => pyLower(pyStrip(r)).startsWith(pyLower(pyStrip(str(kw, 'prompt_to_repeat')))),
  },
  {
    id: 'startend:end_checker', args: ['end_phrase'],
    check: (r, kw) => pyLower(pyStripChars(pyStrip(r), '"')).endsWith(pyLower(pyStrip(str(kw, 'end_phrase')))),
  },
  {
    id: 'startend:quotation', args: [],
    check: (r) => {
      const v = pyStrip(r);
      return pyLen(v) > 1 && v.startsWith('"') && v.endsWith('"');
    },
  },
  {
    id: 'change_case:capital_word_frequency', args: ['capital_frequency', 'capital_relation'], dependsOn: 'tokenization',
    check: (r, kw, ctx) => relate(ctx.wordTokenize(r).filter((w) => pyIsUpper(w)).length, kw, 'capital_relation', 'capital_frequency'),
  },
  {
    id: 'change_case:english_capital', args: [], dependsOn: 'language',
    check: (r, _kw, ctx) => pyIsUpper(r) && langOr(ctx, r, (l) => l === 'en'),
  },
  {
    id: 'change_case:english_lowercase', args: [], dependsOn: 'language',
    check: (r, _kw, ctx) => pyIsLower(r) && langOr(ctx, r, (l) => l === 'en'),
  },
  {
    id: 'punctuation:no_comma', args: [],
    check: (r) => !r.includes(','),
  },
];

function pyStripRight(s: string, chars: string): string {
  let j = s.length;
  while (j > 0 && chars.includes(s[j - 1]!)) j--;
  return s.slice(0, j);
}

/** Instruction id -> check. */
export const INSTRUCTIONS: ReadonlyMap<string, InstructionCheck> = new Map(CHECKS.map((c) => [c.id, c]));

/** The part of an instruction id before ':' (the category). */
export function categoryOf(id: string): string {
  const i = id.indexOf(':');
  return i < 0 ? id : id.slice(0, i);
}

/** The default NLP parts: the langdetect port and the Punkt/Treebank approximations. */
export function defaultNlp(detect: (text: string) => string): CheckContext {
  return { detectLanguage: detect, countSentences, wordTokenize };
}
