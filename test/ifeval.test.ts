import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { sharedDir } from '../src/util/paths.js';
import { INSTRUCTIONS, defaultNlp } from '../src/eval/ifeval/checks.js';
import { conformance, formatConformance } from '../src/eval/ifeval/conformance.js';
import { LangDetectError, defaultLangModel, detectLanguage } from '../src/eval/ifeval/langdetect.js';
import { countSentences, treebankTokenize, wordTokenize } from '../src/eval/ifeval/nltk.js';
import { pyFindAll, pyIsLower, pyIsUpper, pyJsonParses, pySearch, pySplitWs, pyStrip } from '../src/eval/ifeval/py.js';
import { checkInstruction, looseVariants, summarize, evaluate } from '../src/eval/ifeval/score.js';
import { defaultIfevalNlp } from '../src/eval/ifeval/run.js';

const nlp = () => defaultIfevalNlp();
const check = (id: string, response: string, kwargs: Record<string, unknown> = {}, mode: 'strict' | 'loose' = 'strict'): boolean =>
  checkInstruction(id, response, kwargs, nlp(), mode);

test('ifeval: conformance with the reference checker on the GPT-4 responses (per id, strict and loose)', (t) => {
  const rep = conformance(join(sharedDir(), 'data', 'ifeval'), nlp());
  const table = formatConformance(rep);
  console.log(table);
  for (const d of rep.disagreements) t.diagnostic(`disagreement: key ${d.key} ${d.id} ${d.mode}: ours ${d.ours}, reference ${d.reference}`);
  assert.deepEqual(rep.missing, [2785]);
  assert.equal(rep.perId.length, 25);
  assert.ok(rep.total > 800, `only ${rep.total} instructions compared`);
  const overall = (rep.strictAgree + rep.looseAgree) / (2 * rep.total);
  assert.ok(rep.strictAgree / rep.total >= 0.995, `strict agreement ${rep.strictAgree}/${rep.total}`);
  assert.ok(rep.looseAgree / rep.total >= 0.995, `loose agreement ${rep.looseAgree}/${rep.total}`);
  assert.ok(overall >= 0.995);
  for (const e of rep.perId) {
    if (INSTRUCTIONS.get(e.id)!.dependsOn) continue;
    assert.equal(e.strictAgree, e.total, `${e.id}: strict ${e.strictAgree}/${e.total}`);
    assert.equal(e.looseAgree, e.total, `${e.id}: loose ${e.looseAgree}/${e.total}`);
  }
});

test('ifeval: Python string and regex semantics', () => {
  // \b and \w are Unicode-aware in Python (JS's \b is ASCII-only)
  assert.equal(pySearch('\\bcafé\\b', 'Un café, merci', { ignoreCase: true }), true);
  assert.equal(pySearch('\\bcaf\\b', 'Un café, merci', { ignoreCase: true }), false);
  assert.equal(check('keywords:forbidden_words', 'Ein schönes Haus', { forbidden_words: ['schön'] }), true);
  assert.equal(check('keywords:forbidden_words', 'Ein schön Haus', { forbidden_words: ['SCHÖN'] }), false);
  // `.` matches '\r' in Python; `$` with MULTILINE ends lines only at '\n'
  assert.deepEqual(pyFindAll('^\\s*-.*$', 'x\n\n- a\r\n-b', { multiline: true }), ['\n- a\r', '-b']);
  // whitespace per str.isspace (\x1c..\x1f, \x85 are whitespace; \ufeff is not)
  assert.equal(pyStrip('\x1c a \x85'), 'a');
  assert.equal(pyStrip('\ufeffa'), '\ufeffa');
  assert.deepEqual(pySplitWs(' a\u3000b\n'), ['a', 'b']);
  // isupper / islower
  assert.equal(pyIsUpper('HELLO, WORLD 42'), true);
  assert.equal(pyIsUpper('42'), false);
  assert.equal(pyIsUpper('HELLO ǅ'), false); // titlecase letter
  assert.equal(pyIsLower('hello ß 42'), true);
  // json.loads accepts NaN/Infinity, rejects trailing commas and control characters in strings
  assert.equal(pyJsonParses('{"a": NaN, "b": [-Infinity, 1e5]}'), true);
  assert.equal(pyJsonParses('{"a": 1,}'), false);
  assert.equal(pyJsonParses('"a\tb"'), false);
  assert.equal(pyJsonParses(' [1, 2] '), true);
  assert.equal(pyJsonParses(''), false);
});

test('ifeval: individual checks follow the reference rules', () => {
  assert.equal(check('detectable_format:json_format', '```json\n{"a": 1}\n```'), true);
  assert.equal(check('detectable_format:json_format', '```JSON\n{"a": 1}\n```'), true);
  assert.equal(check('detectable_format:json_format', 'Here: {"a": 1}'), false);
  assert.equal(check('length_constraints:number_paragraphs', 'a\n***\nb\n***\nc', { num_paragraphs: 3 }), true);
  assert.equal(check('length_constraints:number_paragraphs', '***\na\n***\n\n***\nc', { num_paragraphs: 2 }), false); // blank piece in the middle
  assert.equal(check('length_constraints:nth_paragraph_first_word', 'One.\n\n"Second, para\n\nthird', { num_paragraphs: 3, nth_paragraph: 2, first_word: 'SECOND' }), true);
  assert.equal(check('length_constraints:nth_paragraph_first_word', 'One.\n\nSecond\n\n\n\nthird', { num_paragraphs: 3, nth_paragraph: 3, first_word: 'third' }), false); // piece 3 is blank
  assert.equal(check('detectable_content:postscript', 'Hi.\n\nP.P.S. bye', { postscript_marker: 'P.P.S' }), true);
  assert.equal(check('detectable_content:postscript', 'Hi.\n\nPS bye', { postscript_marker: 'P.S.' }), false);
  assert.equal(check('detectable_format:number_bullet_lists', '* a\n* b\n- c\n**bold**', { num_bullets: 3 }), true);
  assert.equal(check('detectable_format:number_highlighted_sections', '*a* and **b** and * * and **', { num_highlights: 2 }), true);
  assert.equal(check('detectable_format:number_highlighted_sections', '*a* and * *', { num_highlights: 2 }), false);
  assert.equal(check('detectable_format:multiple_sections', 'SECTION 1\na\nSECTION 2\nb', { section_spliter: 'SECTION', num_sections: 2 }), true);
  assert.equal(check('detectable_format:title', '<<  >> and <<Real>>'), true);
  assert.equal(check('detectable_format:title', '<< >>'), false);
  assert.equal(check('combination:two_responses', 'a\n******\nb'), true);
  assert.equal(check('combination:two_responses', 'a\n******\n a '), false);
  assert.equal(check('combination:repeat_prompt', '  WRITE a poem. Sure!', { prompt_to_repeat: 'Write a poem.' }), true);
  assert.equal(check('startend:end_checker', 'Bye. "Any other questions?"', { end_phrase: 'any other questions?' }), true);
  assert.equal(check('startend:quotation', '"'), false);
  assert.equal(check('startend:quotation', ' "hi" '), true);
  assert.equal(check('keywords:existence', 'The Cat sat', { keywords: ['cat', 's.t'] }), true);
  assert.equal(check('keywords:frequency', 'aa aa AA', { keyword: 'aa', frequency: 3, relation: 'at least' }), true);
  assert.equal(check('keywords:frequency', 'aa aa AA', { keyword: 'aa', frequency: 3, relation: 'less than' }), false);
  assert.equal(check('keywords:letter_frequency', 'Banana', { letter: 'A', let_frequency: 3, let_relation: 'at least' }), true);
  assert.equal(check('length_constraints:number_words', 'naïve café, 3 words_x', { num_words: 4, relation: 'at least' }), true);
  assert.equal(check('length_constraints:number_words', 'naïve café, 3 words_x', { num_words: 4, relation: 'less than' }), false);
  assert.equal(check('punctuation:no_comma', 'no commas here'), true);
  assert.equal(check('detectable_format:constrained_response', 'My answer is maybe.'), true);
  // strict requires a non-blank response; loose tries 8 variants
  assert.equal(check('punctuation:no_comma', '   '), false);
  assert.equal(looseVariants('a\nb\nc').length, 8);
  assert.equal(check('startend:quotation', 'Sure:\n"quoted"', {}, 'strict'), false);
  assert.equal(check('startend:quotation', 'Sure:\n"quoted"', {}, 'loose'), true);
  assert.equal(check('detectable_format:title', '**<<T>>**', {}, 'loose'), true);
});

test('ifeval: language detection (langdetect port), sentences and word tokens', () => {
  const m = defaultLangModel();
  assert.equal(detectLanguage(m, 'The quick brown fox jumps over the lazy dog and runs into the forest.'), 'en');
  assert.equal(detectLanguage(m, 'Der schnelle braune Fuchs springt über den faulen Hund und läuft in den Wald.'), 'de');
  assert.equal(detectLanguage(m, 'यह एक छोटा सा परीक्षण है जो हिंदी भाषा में लिखा गया है।'), 'hi');
  assert.equal(detectLanguage(m, '이것은 한국어로 작성된 짧은 테스트 문장입니다.'), 'ko');
  assert.throws(() => detectLanguage(m, '1234 !!! ...'), LangDetectError);
  // no features -> the language checks count as followed (the reference's except branch)
  assert.equal(check('language:response_language', '12345 678', { language: 'de' }), true);
  assert.equal(check('change_case:english_capital', 'THIS IS A LOUD SENTENCE IN ENGLISH, WITH MANY WORDS.'), true);
  assert.equal(check('change_case:english_lowercase', 'this is a quiet sentence in english, with many words.'), true);
  assert.equal(check('change_case:english_lowercase', 'This is not lower case.'), false);
  assert.equal(countSentences('Dr. Smith went to Washington. He arrived at 5 p.m. on Monday! Did he stay?'), 3);
  assert.equal(countSentences('First line\nsecond line without a period'), 1);
  assert.equal(countSentences('Hello world.  '), 1);
  assert.equal(countSentences(''), 0);
  assert.equal(countSentences('He said "Stop." Then he left.'), 2);
  assert.deepEqual(treebankTokenize("DON'T STOP, I can't."), ['DO', "N'T", 'STOP', ',', 'I', 'ca', "n't", '.']);
  assert.equal(wordTokenize('WE ARE THE CHAMPIONS. Of the WORLD.').filter((w) => pyIsUpper(w)).length, 5);
});

test('ifeval: summaries count prompt- and instruction-level accuracy per id and category', () => {
  const ctx = defaultNlp(() => 'en');
  const inp = (ids: string[], kwargs: Record<string, unknown>[] = ids.map(() => ({}))) => ({ prompt: ids.join('+'), instruction_id_list: ids, kwargs });
  const results = [
    evaluate(inp(['punctuation:no_comma', 'startend:quotation']), '"no commas"', ctx, 'strict'),
    evaluate(inp(['punctuation:no_comma']), 'a, b', ctx, 'strict'),
  ];
  const s = summarize(results);
  assert.deepEqual(s.prompt_level, { followed: 1, total: 2, accuracy: 0.5 });
  assert.deepEqual(s.instruction_level, { followed: 2, total: 3, accuracy: 2 / 3 });
  assert.deepEqual(s.per_instruction['punctuation:no_comma'], { followed: 1, total: 2, accuracy: 0.5 });
  assert.deepEqual(s.per_category.startend, { followed: 1, total: 1, accuracy: 1 });
});
