// A TypeScript port of the `langdetect` Python package (itself a port of Cybozu's Java
// language-detection, Apache-2.0), which the IFEval reference uses for `language:response_language`,
// `change_case:english_capital` and `change_case:english_lowercase`. Same text cleaning, n-gram
// extraction (1..3-grams, words in capitals skipped), character normalization, smoothing
// (alpha = 0.5 + N(0,1) * 0.05), 7 trials of random n-gram sampling with convergence at 0.99999.
//
// The reference runs unseeded, so its decisions on borderline texts are random. This port is
// deterministic: it runs the detector with several fixed seeds and returns the language that wins
// most often (the reference's most likely answer).
//
// Profiles: the Cybozu n-gram profiles ({name, freq, n_words}), read from a folder of JSON files
// (one per language) or from the bundled compact file (see loadProfiles).
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { packageRoot } from '../../util/paths.js';
import { Rng } from '../../util/rng.js';
import { MixtuneError } from '../../util/errors.js';
import { CJK_CLASSES } from './langdetect-cjk.js';

export class LangDetectError extends Error {}

interface Profile { name: string; freq: Record<string, number>; n_words: number[] }

export interface LangModel {
  langs: string[];
  /** n-gram -> probability per language (index into langs). */
  wordLangProb: Map<string, Float64Array>;
}

/** Builds the model from profiles as langdetect's DetectorFactory.add_profile does. */
export function buildModel(profiles: Profile[]): LangModel {
  const sorted = [...profiles].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const langs = sorted.map((p) => p.name);
  const wordLangProb = new Map<string, Float64Array>();
  sorted.forEach((p, idx) => {
    for (const [word, count] of Object.entries(p.freq)) {
      const len = [...word].length;
      if (len < 1 || len > 3) continue;
      let arr = wordLangProb.get(word);
      if (!arr) { arr = new Float64Array(sorted.length); wordLangProb.set(word, arr); }
      arr[idx] = count / p.n_words[len - 1]!;
    }
  });
  return { langs, wordLangProb };
}

/** The bundled profiles (53 languages; langdetect's Python package also has ca and cy). */
export function bundledProfilesPath(): string {
  return join(packageRoot(), 'src', 'eval', 'ifeval', 'data', 'langdetect-profiles.json.gz');
}

/** Reads profiles: a folder of per-language JSON files, or one (optionally gzipped) JSON file {profiles: Profile[]}. */
export function loadProfiles(path: string = bundledProfilesPath()): Profile[] {
  if (!existsSync(path)) throw new MixtuneError(`${path}: language profiles not found`);
  if (path.endsWith('.json') || path.endsWith('.json.gz')) {
    const buf = readFileSync(path);
    const data = JSON.parse((path.endsWith('.gz') ? gunzipSync(buf) : buf).toString('utf8')) as { profiles: Profile[] };
    return data.profiles;
  }
  return readdirSync(path).filter((f) => !f.startsWith('.')).sort().map((f) => JSON.parse(readFileSync(join(path, f), 'utf8')) as Profile);
}

// --- character normalization (NGram.normalize) ---

const CJK_MAP = new Map<string, string>();
for (const cls of CJK_CLASSES) {
  const chars = [...cls];
  for (const ch of chars) CJK_MAP.set(ch, chars[0]!);
}
const LATIN1_EXCLUDED = '\u00A0\u00AB\u00B0\u00BB';

function normalizeChar(ch: string): string {
  const cp = ch.codePointAt(0)!;
  if (cp <= 0x7f) {
    return (ch < 'A' || (ch > 'Z' && ch < 'a') || ch > 'z') ? ' ' : ch;
  }
  if (cp <= 0xff) return LATIN1_EXCLUDED.includes(ch) ? ' ' : ch;
  if (cp >= 0x180 && cp <= 0x24f) {
    if (ch === '\u0219') return '\u015f';
    if (ch === '\u021b') return '\u0163';
    return ch;
  }
  if (cp >= 0x2000 && cp <= 0x206f) return ' ';
  if (cp >= 0x600 && cp <= 0x6ff) return ch === '\u06cc' ? '\u064a' : ch;
  if (cp >= 0x1e00 && cp <= 0x1eff) return cp >= 0x1ea0 ? '\u1ec3' : ch;
  if (cp >= 0x3040 && cp <= 0x309f) return '\u3042';
  if (cp >= 0x30a0 && cp <= 0x30ff) return '\u30a2';
  if ((cp >= 0x3100 && cp <= 0x312f) || (cp >= 0x31a0 && cp <= 0x31bf)) return '\u3105';
  if (cp >= 0x4e00 && cp <= 0x9fff) return CJK_MAP.get(ch) ?? ch;
  if (cp >= 0xac00 && cp <= 0xd7af) return '\uac00';
  return ch;
}

const VI_BASE = 'AEIOUYaeiouy\u00c2\u00ca\u00d4\u00e2\u00ea\u00f4\u0102\u0103\u01a0\u01a1\u01af\u01b0';
const VI_RE = new RegExp(`([${VI_BASE}])([\u0300\u0301\u0303\u0309\u0323])`, 'gu');
function normalizeVi(text: string): string {
  return text.replace(VI_RE, (m) => m.normalize('NFC'));
}

const URL_RE = /https?:\/\/[-_.?&~;+=/#0-9A-Za-z]{1,2076}/g;
const MAIL_RE = /[-_.0-9A-Za-z]{1,64}@[-_0-9A-Za-z]{1,255}[-_.0-9A-Za-z]{1,255}/g;
const UPPER = /\p{Uppercase}/u;
const NOT_UPPER = /\p{Lowercase}|\p{Lt}/u;
/** Python's str.isupper() on one character. */
const isUpperChar = (ch: string): boolean => ch !== '' && UPPER.test(ch) && !NOT_UPPER.test(ch);

/** Detector.append + cleaning_text: the text the n-grams are taken from (code points). */
export function prepareText(raw: string): string[] {
  let text = raw.replace(URL_RE, ' ').replace(MAIL_RE, ' ');
  text = normalizeVi(text);
  const cps = [...text];
  const kept: string[] = [];
  let pre = '';
  for (let i = 0; i < Math.min(cps.length, 10000); i++) {
    const ch = cps[i]!;
    if (ch !== ' ' || pre !== ' ') kept.push(ch);
    pre = ch;
  }
  let latin = 0;
  let nonLatin = 0;
  for (const ch of kept) {
    if (ch >= 'A' && ch <= 'z') latin++;
    else if (ch >= '\u0300') {
      const cp = ch.codePointAt(0)!;
      if (!(cp >= 0x1e00 && cp <= 0x1eff)) nonLatin++;
    }
  }
  if (latin * 2 < nonLatin) return kept.filter((ch) => ch < 'A' || ch > 'z');
  return kept;
}

/** Detector._extract_ngrams. */
export function extractNgrams(model: LangModel, chars: string[]): string[] {
  const result: string[] = [];
  let grams = ' ';
  let capital = false;
  for (const raw of chars) {
    const ch = normalizeChar(raw);
    const last = grams.slice(-1);
    let skipAdd = false;
    if (last === ' ') {
      grams = ' ';
      capital = false;
      if (ch === ' ') skipAdd = true;
    } else if ([...grams].length >= 3) {
      grams = [...grams].slice(1).join('');
    }
    if (!skipAdd) {
      grams += ch;
      if (isUpperChar(ch)) {
        if (isUpperChar(last)) capital = true;
      } else capital = false;
    }
    if (capital) continue;
    const g = [...grams];
    for (let n = 1; n <= 3; n++) {
      if (g.length < n) break;
      const w = g.slice(g.length - n).join('');
      if (w !== ' ' && model.wordLangProb.has(w)) result.push(w);
    }
  }
  return result;
}

/** One run of Detector._detect_block with a given seed: the language probabilities. */
export function detectProbs(model: LangModel, ngrams: string[], rng: Rng): Float64Array {
  const L = model.langs.length;
  const langprob = new Float64Array(L);
  const prob = new Float64Array(L);
  for (let t = 0; t < 7; t++) {
    prob.fill(1 / L);
    const alpha = 0.5 + rng.normal() * 0.05;
    const weight = alpha / 10000;
    for (let i = 0; ; i++) {
      const w = ngrams[Math.floor(rng.float() * ngrams.length)]!;
      const map = model.wordLangProb.get(w)!;
      for (let k = 0; k < L; k++) prob[k]! *= weight + map[k]!;
      if (i % 5 === 0) {
        let sum = 0;
        for (let k = 0; k < L; k++) sum += prob[k]!;
        let maxp = 0;
        for (let k = 0; k < L; k++) {
          const p = prob[k]! / sum;
          prob[k] = p;
          if (p > maxp) maxp = p;
        }
        if (maxp > 0.99999 || i >= 1000) break;
      }
    }
    for (let k = 0; k < L; k++) langprob[k]! += prob[k]! / 7;
  }
  return langprob;
}

export interface DetectOptions { votes?: number; seed?: number }

/**
 * langdetect.detect(text): the top language code. Throws LangDetectError when the text has no
 * features (no known n-gram), as the reference does. With votes > 1, the majority answer over
 * several seeded runs.
 */
export function detectLanguage(model: LangModel, text: string, opts: DetectOptions = {}): string {
  const ngrams = extractNgrams(model, prepareText(text));
  if (ngrams.length === 0) throw new LangDetectError('No features in text.');
  const votes = opts.votes ?? 5;
  const tally = new Map<string, number>();
  for (let v = 0; v < votes; v++) {
    const rng = new Rng((opts.seed ?? 0) + 7919 * v + 1);
    const probs = detectProbs(model, ngrams, rng);
    let best = -1;
    let bestP = 0.1; // PROB_THRESHOLD: below it the reference returns 'unknown'
    for (let k = 0; k < probs.length; k++) if (probs[k]! > bestP) { bestP = probs[k]!; best = k; }
    const lang = best < 0 ? 'unknown' : model.langs[best]!;
    tally.set(lang, (tally.get(lang) ?? 0) + 1);
  }
  let top = 'unknown';
  let topN = -1;
  for (const [lang, c] of tally) if (c > topN) { top = lang; topN = c; }
  return top;
}

let defaultModel: LangModel | undefined;
/** The model built from the bundled profiles (loaded once). */
export function defaultLangModel(): LangModel {
  defaultModel ??= buildModel(loadProfiles());
  return defaultModel;
}
