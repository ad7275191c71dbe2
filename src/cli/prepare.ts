// `mixtune prepare --config train.yaml [--show N] [--out FILE]`: runs the data side of `train`
// (read, recipe, pack) without the model: prints dataset statistics, renders N rows so a person
// can check the groups, parts, positions and loss tokens, and optionally saves the rows for
// `mixtune train --prepared FILE` (or data.prepared).
import { checkModelAndTokenizer } from '../io/load.js';
import { loadTrainConfig } from '../train/config.js';
import { prepareRows, savePrepared, type Prepared } from '../train/prepare.js';
import type { Row } from '../data/pack.js';
import { lossMarks, tokenText } from '../data/row-text.js';
import type { Tokenizer } from '../tokenizer.js';
import { ensureWritableDir } from '../util/fs.js';
import { dirname, resolve } from 'node:path';
import { checkContextLength, encoderFor } from '../train/setup.js';

export interface PrepareCliOptions {
  config: string;
  set: string[];
  show?: number;
  out?: string;
  skipBad?: boolean;
  /** One line per token instead of the compact per-part rendering. */
  tokens?: boolean;
  /** Print the statistics as one JSON line instead of text. */
  json?: boolean;
}

export function runPrepare(o: PrepareCliOptions, out: (s: string) => void = (s) => void process.stdout.write(s + '\n')): Prepared {
  const sets = [...o.set];
  if (o.skipBad) sets.push('data.skip_bad=true');
  const cfg = loadTrainConfig(o.config, sets);
  const tok = checkModelAndTokenizer(cfg.model, cfg.tokenizer);
  if (o.out) ensureWritableDir(dirname(resolve(o.out)), '--out');
  checkContextLength(cfg);
  const prep = prepareRows(cfg, encoderFor(tok, cfg).encode);
  checkContextLength(cfg, prep.train);
  if (o.json) out(JSON.stringify(prep.stats));
  else out(formatStats(prep, cfg.data.max_len));
  const n = Math.min(o.show ?? 0, prep.train.length);
  for (let i = 0; i < n; i++) out('\n' + (o.tokens ? renderRowTokens(prep.train[i]!, i, tok) : renderRow(prep.train[i]!, i, tok)));
  if (o.out) {
    savePrepared(o.out, prep, cfg.data.max_len);
    out(`${o.json ? '' : '\n'}saved ${prep.train.length} train and ${prep.eval.length} eval rows to ${o.out}`);
  }
  return prep;
}

export function formatStats(p: Prepared, maxLen: number): string {
  const s = p.stats;
  const t = s.train;
  const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
  const kv = (r: Record<string, unknown>): string => Object.entries(r).map(([k, v]) => `${k}=${typeof v === 'object' && v !== null ? `{${kv(v as Record<string, unknown>)}}` : v}`).join(' ');
  const lines = [
    `recipe: ${s.recipe}${((info) => (info ? ` (${info})` : ''))(kv(Object.fromEntries(Object.entries(s.recipeInfo).filter(([k]) => k !== 'recipe'))))}`,
    `examples per domain: ${kv(s.examples)} (total ${Object.values(s.examples).reduce((a, b) => a + b, 0)}); eval examples: ${s.evalExamples}`,
    `skipped bad records: ${s.skippedBad}${s.skipReasons.length ? ` (${s.skipReasons.join('; ')})` : ''}; without trained tokens: ${s.noTargets}`,
    `train: ${t.groups} groups -> ${t.rows} rows of <= ${maxLen} tokens; packing efficiency ${pct(t.efficiency)}; ` +
      `tokens ${t.tokens} (${t.targetTokens} with loss); truncated ${t.truncated}, dropped ${t.dropped}`,
  ];
  if (s.eval) {
    const e = s.eval;
    lines.push(`eval: ${e.groups} groups -> ${e.rows} rows; packing efficiency ${pct(e.efficiency)}; tokens ${e.tokens} (${e.targetTokens} with loss); truncated ${e.truncated}, dropped ${e.dropped}`);
  }
  for (const w of s.warnings) lines.push(`warning: ${w}`);
  return lines.join('\n');
}

function posRange(p: number[]): string {
  if (p.length === 0) return '';
  if (p.every((x, i) => x === p[0]! + i)) return p.length === 1 ? `${p[0]}` : `${p[0]}..${p[p.length - 1]}`;
  return p.join(',');
}

/**
 * Compact rendering: one block per group, one line per part: "input i" / "output" (MISO) or
 * "tokens" (n = 1), the position range, then the part's text with ⟦...⟧ around tokens that carry
 * a loss (they are predicted by the previous position; newlines shown as \n).
 */
export function renderRow(row: Row, index: number, tok: Tokenizer): string {
  const marks = lossMarks(row);
  const nLoss = marks.filter(Boolean).length;
  const out = [`row ${index}: ${row.length} tokens, ${row.groups.length} group${row.groups.length === 1 ? '' : 's'}, ${nLoss} loss tokens  (⟦...⟧ = tokens that carry a loss)`];
  let t = 0;
  while (t < row.length) {
    const g = row.group[t]!;
    let e = t;
    while (e < row.length && row.group[e] === g) e++;
    const info = row.groups[g]!;
    out.push(`  group ${g}: ${info.nInputs > 1 ? `MISO, ${info.nInputs} inputs, ${info.weighting} weighting` : 'causal'}, ${e - t} tokens`);
    let p = t;
    while (p < e) {
      const part = row.part[p]!;
      let q = p;
      while (q < e && row.part[q] === part) q++;
      const label = info.nInputs > 1 ? (part < 0 ? 'output' : `input ${part}`) : 'tokens';
      let text = '';
      let open = false;
      for (let i = p; i < q; i++) {
        if (marks[i] && !open) (text += '⟦'), (open = true);
        if (!marks[i] && open) (text += '⟧'), (open = false);
        text += tokenText(tok, row.tokens[i]!, i > p ? row.tokens[i - 1] : undefined);
      }
      if (open) text += '⟧';
      out.push(`    ${label.padEnd(8)} pos ${posRange([...row.positions.subarray(p, q)]).padEnd(10)} ${text}`);
      p = q;
    }
    t = e;
  }
  return out.join('\n');
}

/** One line per token: index, group, part, position, id, text, and "loss" when it is trained. */
export function renderRowTokens(row: Row, index: number, tok: Tokenizer): string {
  const marks = lossMarks(row);
  const out = [`row ${index}: ${row.length} tokens, ${row.groups.length} groups`, '     t group  part   pos     id  loss  token'];
  for (let t = 0; t < row.length; t++) {
    const g = row.group[t]!;
    const part = row.groups[g]!.nInputs > 1 ? (row.part[t]! < 0 ? 'out' : `in${row.part[t]}`) : '-';
    out.push(`${String(t).padStart(6)} ${String(g).padStart(5)} ${part.padStart(5)} ${String(row.positions[t]).padStart(5)} ${String(row.tokens[t]).padStart(6)}  ${marks[t] ? '  * ' : '    '}  '${tokenText(tok, row.tokens[t]!, t > 0 ? row.tokens[t - 1] : undefined)}'`);
  }
  return out.join('\n');
}
