// How a prepared row reads to a person: each token's text (special tokens by name, control
// characters escaped) and which tokens carry a loss. Shared by `mixtune prepare --show` and the
// Rows view of `mixtune ui`.
import { IGNORE, type Row } from './pack.js';
import type { Tokenizer } from '../tokenizer.js';

/** A token's text with newlines and control characters escaped. */
export function tokenText(tok: Tokenizer, id: number, prev?: number): string {
  const opts = prev !== undefined ? { prev } : {};
  let text = Buffer.from(tok.decodeBytes([id], opts)).toString('utf8');
  // Special tokens (BOS, EOS, [INST], ...) by their own text ("<s>"; llama2.c stores "\n<s>\n").
  if (text === '' && prev !== undefined) text = Buffer.from(tok.decodeBytes([id])).toString('utf8');
  if (text === '') {
    // special tokens by their own text (llama2.c stores "\n<s>\n": trimmed); a token that is only
    // whitespace (the space after BOS) stays itself
    const sp = Buffer.from(tok.decodeBytes([id], { special: true })).toString('utf8');
    text = sp.trim() || sp || `<${id}>`;
  }
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\\]/g, (c) => (c === '\n' ? '\\n' : c === '\t' ? '\\t' : c === '\\' ? '\\\\' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
}

/** Whether row token t is predicted with a loss (the previous token of its stream has a target). */
export function lossMarks(row: Row): boolean[] {
  const m = new Array<boolean>(row.length).fill(false);
  for (let t = 0; t + 1 < row.length; t++) if (row.targets[t] !== IGNORE) m[t + 1] = true;
  return m;
}
