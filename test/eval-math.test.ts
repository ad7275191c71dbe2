import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sharedDir } from '../src/util/paths.js';
import {
  cleanNumber, extractGsm8kAnswer, extractMathAnswer, gsm8kEquiv, gsm8kReference, lastBoxed, mathEquiv, normalizeMathAnswer,
} from '../src/eval/math.js';
import { mathReference } from '../src/eval/tasks.js';

const readJsonl = (p: string): Record<string, unknown>[] => readFileSync(p, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);

test('gsm8k: #### answer, fallbacks, number cleaning', () => {
  assert.equal(gsm8kReference('So 9*2=<<9*2=18>>18\n#### 18'), '18');
  assert.equal(gsm8kReference('#### 1,234'), '1234');
  assert.equal(gsm8kReference('no marker'), null);
  assert.deepEqual(extractGsm8kAnswer('She makes $18.\n#### $18'), { answer: '18', method: 'hash' });
  assert.deepEqual(extractGsm8kAnswer('#### 3 bolts\nThat is all, 7 more words'), { answer: '3', method: 'hash' });
  assert.deepEqual(extractGsm8kAnswer('first 5, then\n#### 12\nand later\n#### 14'), { answer: '14', method: 'hash' });
  assert.deepEqual(extractGsm8kAnswer('The total is \\boxed{1,200} dollars and 3 cents'), { answer: '1200', method: 'boxed' });
  assert.deepEqual(extractGsm8kAnswer('The answer is 42.\nCheck: 6*7 = 42, wait 41'), { answer: '42', method: 'answer-is' });
  assert.deepEqual(extractGsm8kAnswer('3 apples plus 4 apples make 7.'), { answer: '7', method: 'last-number' });
  assert.deepEqual(extractGsm8kAnswer('He owes -5 dollars'), { answer: '-5', method: 'last-number' });
  assert.deepEqual(extractGsm8kAnswer('no digits here'), { answer: null, method: 'none' });
  assert.deepEqual(extractGsm8kAnswer('#### \n'), { answer: null, method: 'none' });
  assert.equal(cleanNumber('$1,000,000.50'), '1000000.50');
  assert.equal(cleanNumber('18.'), '18');
  assert.equal(cleanNumber('abc'), null);
  assert.ok(gsm8kEquiv('18.00', '18'));
  assert.ok(gsm8kEquiv('0.5', '.5'));
  assert.ok(!gsm8kEquiv('18', '19'));
  assert.ok(!gsm8kEquiv(null, '18'));
});

test('math: \\boxed extraction (nested braces, \\boxed x, \\fbox, last one wins)', () => {
  assert.equal(lastBoxed('so $\\boxed{\\frac{1}{2}}$.'), '\\frac{1}{2}');
  assert.equal(lastBoxed('\\boxed{1} then \\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}'), '\\left( 3, \\frac{\\pi}{2} \\right)');
  assert.equal(lastBoxed('answer: $\\boxed 5$ done'), '5');
  assert.equal(lastBoxed('\\fbox{7}'), '7');
  assert.equal(lastBoxed('\\boxed{\\{1,2\\}}'), '\\{1,2\\}');
  assert.equal(lastBoxed('\\boxed{unclosed'), null);
  assert.equal(lastBoxed('no box'), null);
  assert.equal(lastBoxed('\\boxedx'), null);
  assert.deepEqual(extractMathAnswer('Final Answer: The final answer is $[2,5)$. I hope it is correct.'), { answer: '[2,5)', method: 'final-answer' });
  assert.deepEqual(extractMathAnswer('Thus the answer is $\\frac{3}{4}$.'), { answer: '\\frac{3}{4}', method: 'answer-is' });
  assert.deepEqual(extractMathAnswer('I do not know.'), { answer: null, method: 'none' });
});

test('math: normalization and equivalence (Hendrycks strip_string + extras)', () => {
  const same: [string, string][] = [
    ['\\frac12', '\\frac{1}{2}'], ['\\dfrac{1}{2}', '1/2'], ['\\tfrac{1}{2}', '0.5'], ['.5', '0.5'], ['0.50', '\\frac12'],
    ['x = 5', '5'], ['k=5', '5'], ['5\\text{ cm}', '5'], ['5 \\text{cm}', '5'], ['12 \\mbox{ inches}^2', '12'], ['10\\%', '10'],
    ['10%', '10'], ['90^\\circ', '90'], ['90^{\\circ}', '90'], ['\\$18.00', '18'], ['$18$', '18'], ['1,000', '1000'], ['10,\\!080', '10080'],
    ['\\left(1,2\\right)', '(1,2)'], ['( 1 , 2 )', '(1,2)'], ['\\text{Devon}', 'Devon'], ['\\textbf{(A)}', '(A)'], ['\\sqrt3', '\\sqrt{3}'],
    ['2\\sqrt2', '2\\sqrt{2}'], ['5.', '5'], ['05', '5'], ['-0.0', '0'], ['\\frac{-1}{2}', '-\\frac12'], ['\\frac{3}{6}', '\\frac{1}{2}'],
    ['3/6', '0.5'], ['\\left[ -2, \\frac{1}{2} \\right)', '[-2,\\frac12)'], ['1, 2, 3', '1,2,3'], ['\\boxed{3}', '3'], ['3\\!', '3'],
    ['\\frac1{72}', '\\frac{1}{72}'], ['\\displaystyle \\frac{1}{2}', '\\frac12'], ['\\;7', '7'], ['\\text{(C)}', '(C)'],
  ];
  for (const [a, b] of same) assert.ok(mathEquiv(a, b), `${a} ~ ${b} (${normalizeMathAnswer(a)} vs ${normalizeMathAnswer(b)})`);
  const diff: [string, string][] = [
    ['3', '4'], ['(1,2)', '[1,2]'], ['(1,2)', '(2,1)'], ['\\frac{1}{3}', '0.33'], ['x^2', 'x^3'], ['\\sqrt{2}', '\\sqrt{3}'],
    ['1,2', '1,2,3'], ['-5', '5'], ['\\text{Devon}', '\\text{Kevin}'], ['', '5'],
  ];
  for (const [a, b] of diff) assert.ok(!mathEquiv(a, b), `${a} !~ ${b}`);
  assert.ok(!mathEquiv(null, '5'));
  assert.ok(!mathEquiv('5', null));
});

test('gsm8k test set: the reference solutions score 100% (and 97% by the last-number fallback alone)', () => {
  const rows = readJsonl(join(sharedDir(), 'data', 'gsm8k', 'test.jsonl'));
  assert.equal(rows.length, 1319);
  let ok = 0;
  let fallback = 0;
  for (const r of rows) {
    const ref = gsm8kReference(r.answer as string);
    assert.notEqual(ref, null);
    if (gsm8kEquiv(extractGsm8kAnswer(r.answer as string).answer, ref)) ok++;
    const noHash = (r.answer as string).replace(/####[^\n]*$/, '');
    if (gsm8kEquiv(extractGsm8kAnswer(noHash).answer, ref)) fallback++;
  }
  console.log(`gsm8k references: ${ok}/${rows.length} via ####, ${fallback}/${rows.length} via the fallbacks only`);
  assert.equal(ok, rows.length);
  assert.ok(fallback / rows.length > 0.95, `fallback ${fallback}`);
});

test('math500: the reference solutions score 100%; different answers are not merged', () => {
  const rows = readJsonl(join(sharedDir(), 'data', 'math500', 'test_ori.jsonl'));
  assert.equal(rows.length, 500);
  let ok = 0;
  for (const r of rows) if (mathEquiv(extractMathAnswer(r.solution as string).answer, mathReference(r))) ok++;
  console.log(`math500 references: ${ok}/${rows.length}`);
  assert.equal(ok, rows.length);
  // Pairs of distinct reference answers judged equivalent: only unit/format variants (90^\circ vs 90, x=5 vs 5, \frac14 vs \frac{1}{4}...).
  const answers = [...new Set(rows.map((r) => r.answer as string))];
  const merged: string[] = [];
  for (let i = 0; i < answers.length; i++) for (let j = i + 1; j < answers.length; j++) if (mathEquiv(answers[i]!, answers[j]!)) merged.push(`${answers[i]} ~ ${answers[j]}`);
  for (const m of merged) {
    const [a, b] = m.split(' ~ ').map((s) => s.replace(/\^\\circ|x=|\\\$|,\\!|\\mbox\{ cm\}\^2|\{|\}|\s/g, ''));
    assert.equal(a, b, `unexpectedly equivalent: ${m}`);
  }
});
