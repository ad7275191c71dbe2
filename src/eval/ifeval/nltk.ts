// Sentence splitting and word tokenization as NLTK does them for the IFEval reference:
// - sentences: the Punkt algorithm (NLTK's PunktSentenceTokenizer: candidate ends at . ? !, the
//   first pass marks sentence breaks and abbreviations, the second pass applies the collocation,
//   orthographic, sentence-starter, initial and ordinal heuristics, then boundary realignment),
//   with hand-written English parameters standing in for NLTK's trained english.pickle (abbreviation
//   types, frequent sentence starters, and the orthographic context approximated from a list of common
//   lower-case words). Agreement with the reference is measured in test/ifeval.test.ts.
// - words: nltk.word_tokenize = Punkt sentences, then the Treebank-style NLTKWordTokenizer regexes.
import { PY_WORD_CLASS, pyIsLower, pyIsUpper, pyLower, pyRegex, pyStrip, pySub } from './py.js';

// --- Punkt parameters (English) ---

/** Abbreviation types (lower case, without the final period). */
export const ABBREV_TYPES = new Set<string>([
  // titles and names
  'mr', 'mrs', 'ms', 'dr', 'prof', 'jr', 'sr', 'st', 'rev', 'gen', 'gov', 'sen', 'rep', 'lt', 'col', 'capt', 'sgt', 'maj', 'adm', 'cmdr', 'messrs', 'mt', 'ft',
  // companies
  'inc', 'corp', 'co', 'ltd', 'bros', 'cos', 'plc',
  // Latin and common
  'e.g', 'i.e', 'vs', 'v', 'etc', 'cf', 'al', 'approx', 'dept', 'est', 'no', 'nos', 'vol', 'pp', 'fig', 'figs', 'eq',
  // places, times
  'u.s', 'u.k', 'u.n', 'u.s.a', 'd.c', 'a.m', 'p.m', 'calif', 'fla', 'mass', 'conn', 'ariz', 'colo', 'ill', 'ind', 'kan', 'minn', 'mich', 'nev', 'okla', 'ore', 'pa', 'tenn', 'tex', 'va', 'wash', 'wis', 'n.y', 'n.j', 'n.c', 's.c', 'l.a',
  // months and days
  'jan', 'feb', 'mar', 'apr', 'jun', 'jul', 'aug', 'sep', 'sept', 'oct', 'nov', 'dec', 'mon', 'tue', 'tues', 'wed', 'thu', 'thurs', 'fri', 'sat', 'sun',
]);

/** Frequent sentence starters (lower case). */
export const SENT_STARTERS = new Set<string>([
  'a', 'also', 'among', 'and', 'as', 'at', 'but', 'by', 'during', 'for', 'he', 'her', 'his', 'however', 'i', 'if', 'in', 'it', 'its',
  'meanwhile', 'mr', 'mrs', 'ms', 'now', 'on', 'one', 'other', 'others', 'our', 'separately', 'she', 'since', 'so', 'some', 'that', 'the',
  'their', 'there', 'these', 'they', 'this', 'those', 'though', 'thus', 'to', 'today', 'under', 'we', 'what', 'when', 'while', 'yet', 'you',
]);

/** Collocations (type, next type) that never break. */
export const COLLOCATIONS = new Set<string>([]);

// --- Punkt tokenization ---

const SENT_END = '.?!';
const NON_WORD = `(?:[)"\\;}\\]*:@'({\\[!?])`;
const MULTI_CHAR = '(?:\\-{2,}|\\.{2,}|(?:\\.\\s){2,}\\.)';
const WORD_START = `[^("\`{\\[:;&#*@)}\\]\\-,]`;
const WORD_TOKENIZE_RE = pyRegex(
  `(${MULTI_CHAR}|(?=${WORD_START})\\S+?(?=\\s|$|${NON_WORD}|${MULTI_CHAR}|,(?=$|\\s|${NON_WORD}|${MULTI_CHAR}))|\\S)`,
  { multiline: true },
  true,
);
const PERIOD_CONTEXT_RE = pyRegex(`[${SENT_END.replace('?', '\\?')}](?=(?<after_tok>${NON_WORD}|\\s+(?<next_tok>\\S+)))`, {}, true);
const NUMBER_RE = /^-?[.,]?\d[\d,.-]*\.?$/u;
const ELLIPSIS_RE = /^\.\.+$/;
const INITIAL_RE = new RegExp(`^[^\\P{L}\\p{N}_]\\.$`, 'u'); // Python [^\W\d]\. : a letter then '.'
const REALIGN_RE = pyRegex(`["')\\]}]+?(?:\\s+|(?=--)|$)`, { multiline: true });

interface Tok {
  tok: string;
  type: string;
  periodFinal: boolean;
  sentbreak: boolean;
  abbr: boolean;
  ellipsis: boolean;
}

function tokType(tok: string): string {
  return pyLower(tok).replace(NUMBER_RE, '##number##');
}
function typeNoPeriod(t: Tok): string {
  return t.type.length > 1 && t.type.endsWith('.') ? t.type.slice(0, -1) : t.type;
}
function typeNoSentPeriod(t: Tok): string {
  return t.sentbreak ? typeNoPeriod(t) : t.type;
}
function firstUpper(t: Tok): boolean {
  return pyIsUpper([...t.tok][0] ?? '');
}
function firstLower(t: Tok): boolean {
  return pyIsLower([...t.tok][0] ?? '');
}
function isInitial(t: Tok): boolean {
  return INITIAL_RE.test(t.tok);
}

function wordTokens(text: string): Tok[] {
  const out: Tok[] = [];
  for (const line of text.split('\n')) {
    if (pyStrip(line) === '') continue;
    for (const m of line.matchAll(WORD_TOKENIZE_RE)) {
      const tok = m[0];
      out.push({ tok, type: tokType(tok), periodFinal: tok.endsWith('.'), sentbreak: false, abbr: false, ellipsis: false });
    }
  }
  return out;
}

function firstPass(t: Tok): void {
  const tok = t.tok;
  if (tok.length === 1 && SENT_END.includes(tok)) t.sentbreak = true;
  else if (ELLIPSIS_RE.test(tok)) t.ellipsis = true;
  else if (t.periodFinal && !tok.endsWith('..')) {
    const base = pyLower(tok.slice(0, -1));
    if (ABBREV_TYPES.has(base) || ABBREV_TYPES.has(base.split('-').pop()!)) t.abbr = true;
    else t.sentbreak = true;
  }
}

// Orthographic context flags (Punkt): beginning/middle/unknown position x upper/lower case.
const BEG_UC = 1 << 1, MID_UC = 1 << 2, UNK_UC = 1 << 3, BEG_LC = 1 << 4, MID_LC = 1 << 5, UNK_LC = 1 << 6;
const ORTHO_UC = BEG_UC | MID_UC | UNK_UC;
const ORTHO_LC = BEG_LC | MID_LC | UNK_LC;

/**
 * Stand-in for the trained orthographic context: common English words are seen in lower case
 * mid-sentence and capitalized at sentence starts; anything else (names, numbers) is unknown.
 */
function orthoContext(typ: string): number {
  if (COMMON_LOWER.has(typ)) return MID_LC | BEG_UC | UNK_LC;
  return 0;
}

function orthoHeuristic(t: Tok): boolean | 'unknown' {
  if (';:,.!?'.includes(t.tok) && t.tok.length === 1) return false;
  const ctx = orthoContext(typeNoSentPeriod(t));
  if (firstUpper(t) && ctx & ORTHO_LC && !(ctx & MID_UC)) return true;
  if (firstLower(t) && (ctx & ORTHO_UC || !(ctx & BEG_LC))) return false;
  return 'unknown';
}

function secondPass(t1: Tok, t2: Tok | undefined): void {
  if (!t2 || !t1.periodFinal) return;
  const typ = typeNoPeriod(t1);
  const nextTyp = typeNoSentPeriod(t2);
  const initial = isInitial(t1);
  if (COLLOCATIONS.has(typ + ' ' + nextTyp)) { t1.sentbreak = false; t1.abbr = true; return; }
  if ((t1.abbr || t1.ellipsis) && !initial) {
    const s = orthoHeuristic(t2);
    if (s === true) { t1.sentbreak = true; return; }
    if (firstUpper(t2) && SENT_STARTERS.has(nextTyp)) { t1.sentbreak = true; return; }
  }
  if (initial || typ === '##number##') {
    const s = orthoHeuristic(t2);
    if (s === false) { t1.sentbreak = false; t1.abbr = true; return; }
    if (s === 'unknown' && initial && firstUpper(t2) && !(orthoContext(nextTyp) & ORTHO_LC)) {
      t1.sentbreak = false;
      t1.abbr = true;
    }
  }
}

function annotate(toks: Tok[]): Tok[] {
  for (const t of toks) firstPass(t);
  for (let i = 0; i < toks.length; i++) secondPass(toks[i]!, toks[i + 1]);
  return toks;
}

function textContainsSentbreak(text: string): boolean {
  let found = false;
  for (const t of annotate(wordTokens(text))) {
    if (found) return true;
    if (t.sentbreak) found = true;
  }
  return false;
}

/** PunktSentenceTokenizer.span_tokenize (with realignment): sentence [start, end) offsets (UTF-16). */
export function sentenceSpans(text: string): Array<[number, number]> {
  // _match_potential_end_contexts
  const contexts: Array<{ end: number; nextTok: number | undefined; context: string }> = [];
  let prevSlice: [number, number] = [0, 0];
  let prevMatch: RegExpMatchArray | undefined;
  const emit = (m: RegExpMatchArray, sl: [number, number]): void => {
    const g = m.groups!;
    const nextTokStart = g.next_tok !== undefined ? m.index! + 1 + g.after_tok!.length - g.next_tok.length : undefined;
    contexts.push({ end: m.index! + m[0].length, nextTok: nextTokStart, context: text.slice(sl[0], sl[1]) + m[0] + g.after_tok! });
  };
  for (const m of text.matchAll(PERIOD_CONTEXT_RE)) {
    const before = text.slice(prevSlice[1], m.index);
    const lw = lastWhitespaceIndex(before);
    const start = lw ? lw + prevSlice[1] + 1 : prevSlice[0];
    const wordSlice: [number, number] = [start, m.index!];
    if (prevMatch && prevSlice[1] <= wordSlice[0]) emit(prevMatch, prevSlice);
    prevMatch = m;
    prevSlice = wordSlice;
  }
  if (prevMatch) emit(prevMatch, prevSlice);
  // _slices_from_text
  const slices: Array<[number, number]> = [];
  let lastBreak = 0;
  for (const c of contexts) {
    if (textContainsSentbreak(c.context)) {
      slices.push([lastBreak, c.end]);
      lastBreak = c.nextTok !== undefined ? c.nextTok : c.end;
    }
  }
  slices.push([lastBreak, rstripLen(text)]);
  // _realign_boundaries
  const out: Array<[number, number]> = [];
  let realign = 0;
  for (let i = 0; i < slices.length; i++) {
    const s1: [number, number] = [slices[i]![0] + realign, slices[i]![1]];
    const s2 = slices[i + 1];
    if (!s2) {
      if (s1[1] > s1[0]) out.push(s1);
      continue;
    }
    const m = REALIGN_RE.exec(text.slice(s2[0], s2[1]));
    if (m && m.index === 0) {
      out.push([s1[0], s2[0] + m[0].trimEnd().length]);
      realign = m[0].length;
    } else {
      realign = 0;
      if (s1[1] > s1[0]) out.push(s1);
    }
  }
  return out;
}

/** Python's string.whitespace (ASCII only), as Punkt's _get_last_whitespace_index uses. */
function lastWhitespaceIndex(s: string): number {
  for (let i = s.length - 1; i >= 0; i--) if (' \t\n\r\v\f'.includes(s[i]!)) return i;
  return 0;
}

function rstripLen(s: string): number {
  return (pyStrip('x' + s)).length - 1;
}

/** nltk.sent_tokenize (English Punkt approximation). */
export function sentTokenize(text: string): string[] {
  return sentenceSpans(text).map(([a, b]) => text.slice(a, b));
}

// --- NLTKWordTokenizer (improved Treebank) ---

type Rule = [RegExp, string];
const r = (p: string, repl: string, flags: { ignoreCase?: boolean; multiline?: boolean } = {}): Rule => [pyRegex(p, flags, true), repl];

const STARTING_QUOTES: Rule[] = [
  r('([«“‘„]|[`]+)', ' \\1 '),
  r('^"', '``'),
  r('(``)', ' \\1 '),
  r('([ \\(\\[{<])("|\'{2})', '\\1 `` '),
  r("(?i)(')(?!re|ve|ll|m|t|s|d|n)(\\w)\\b", '\\1 \\2'),
];
const ENDING_QUOTES: Rule[] = [
  r('([»”’])', ' \\1 '),
  r("''", " '' "),
  r('"', " '' "),
  r("([^' ])('[sS]|'[mM]|'[dD]|') ", '\\1 \\2 '),
  r("([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", '\\1 \\2 '),
];
const PUNCTUATION: Rule[] = [
  r('([^\\.])(\\.)([\\]\\)}>"\']*)\\s*$', '\\1 \\2 \\3 '),
  r('([:,])([^\\d])', ' \\1 \\2'),
  r('([:,])$', ' \\1 '),
  r('\\.{2,}', ' \\g<0> '),
  r('[;@#$%&]', ' \\g<0> '),
  r('([^\\.])(\\.)([\\]\\)}>"\']*)\\s*$', '\\1 \\2\\3 '),
  r('[?!]', ' \\g<0> '),
  r("([^'])' ", "\\1 ' "),
  r('[*]', ' \\g<0> '),
];
const PARENS: Rule = r('[\\]\\[\\(\\)\\{\\}\\<\\>]', ' \\g<0> ');
const DOUBLE_DASHES: Rule = r('--', ' -- ');
const CONTRACTIONS2: RegExp[] = [
  '(?i)\\b(can)(?#X)(not)\\b', "(?i)\\b(d)(?#X)('ye)\\b", '(?i)\\b(gim)(?#X)(me)\\b', '(?i)\\b(gon)(?#X)(na)\\b',
  '(?i)\\b(got)(?#X)(ta)\\b', '(?i)\\b(lem)(?#X)(me)\\b', "(?i)\\b(more)(?#X)('n)\\b", '(?i)\\b(wan)(?#X)(na)(?=\\s)',
].map((p) => pyRegex(p, {}, true));
const CONTRACTIONS3: RegExp[] = ["(?i) ('t)(?#X)(is)\\b", "(?i) ('t)(?#X)(was)\\b"].map((p) => pyRegex(p, {}, true));

/** NLTKWordTokenizer.tokenize on one sentence. */
export function treebankTokenize(text: string): string[] {
  let t = text;
  for (const [re, s] of STARTING_QUOTES) t = pySub(re, s, t);
  for (const [re, s] of PUNCTUATION) t = pySub(re, s, t);
  t = pySub(PARENS[0], PARENS[1], t);
  t = pySub(DOUBLE_DASHES[0], DOUBLE_DASHES[1], t);
  t = ' ' + t + ' ';
  for (const [re, s] of ENDING_QUOTES) t = pySub(re, s, t);
  for (const re of CONTRACTIONS2) t = pySub(re, ' \\1 \\2 ', t);
  for (const re of CONTRACTIONS3) t = pySub(re, ' \\1 \\2 ', t);
  return t.split(new RegExp(`[${'\\s'}]+`, 'u')).filter((w) => w !== '');
}

/** nltk.word_tokenize(text). */
export function wordTokenize(text: string): string[] {
  return sentTokenize(text).flatMap((s) => treebankTokenize(s));
}

/** Words (runs of Python \w) as nltk's RegexpTokenizer(r"\w+") finds them. */
const WORDS_RE = new RegExp(`[${PY_WORD_CLASS}]+`, 'gu');
export function countWords(text: string): number {
  return text.match(WORDS_RE)?.length ?? 0;
}

export function countSentences(text: string): number {
  return sentenceSpans(text).length;
}

// Common English words (lower case) used as the orthographic-context stand-in.
const COMMON_LOWER = new Set<string>(`the of and to a in is it you that he was for on are with as i his they be at one have this from or had by
not but some what there we can out other were all your when up use word how said an each she which do their time if will way about many then
them would write like so these her long make thing see him two has look more day could go come did my sound no most number who over know water
than call first people may down side been now find any new work part take get place made live where after back little only round man year came
show every good me give our under name very through just form much great think say help low line before turn cause same mean differ move right
boy old too does tell sentence set three want air well also play small end put home read hand port large spell add even land here must big high
such follow act why ask men change went light kind off need house picture try us again animal point mother world near build self earth father
head stand own page should country found answer school grow study still learn plant cover food sun four thought let keep eye never last door
between city tree cross since hard start might story saw far sea draw left late run while press close night real life few stop open seem
together next white children begin got walk example ease paper often always music those both mark book letter until mile river car feet care
second group carry took rain eat room friend began idea fish mountain north once base hear horse cut sure watch color face wood main enough
plain girl usual young ready above ever red list though feel talk bird soon body dog family direct pose leave song measure state product black
short numeral class wind question happen complete ship area half rock order fire south problem piece told knew pass farm top whole king size
heard best hour better true during hundred am remember step early hold west ground interest reach fast five sing listen six table travel less
morning ten simple several vowel toward war lay against pattern slow center love person money serve appear road map science rule govern pull
cold notice voice fall power town fine certain fly unit lead cry dark machine note wait plan figure star box noun field rest correct able pound
done beauty drive stood contain front teach week final gave green oh quick develop sleep warm free minute strong special mind behind clear
tail produce fact street inch lot nothing course stay wheel full force blue object decide surface deep moon island foot yet busy test record
boat common gold possible plane age dry wonder laugh thousand ago ran check game shape yes hot miss brought heat snow bed bring sit perhaps fill
east weight language among however therefore additionally furthermore moreover finally firstly secondly lastly overall instead meanwhile
although because another each every either neither both whether without within into onto upon toward towards across around behind below
beneath beside besides beyond despite except inside outside past per plus regarding unlike via whereas yours ours theirs its it's
i'm let's here's there's what's that's don't can't won't isn't aren't wasn't weren't hasn't haven't hadn't doesn't didn't shouldn't wouldn't
couldn't also just really very quite rather almost already always never sometimes often usually maybe please thank thanks dear hello hi
today tomorrow yesterday tonight`.split(/\s+/));
