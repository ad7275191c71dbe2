// One English constraint sentence per IFEval instruction id, rendered from its kwargs. Used by the
// IFEval-style reader (records with instruction_id_list + kwargs) to give MISO-para its constraint
// list. The sentences follow the instruction descriptions of IFEval (specs/ifeval.md) and say
// exactly what the checker verifies (relation "at least" → ≥ N, "less than" → < N).
//
// kwargs values that are null/undefined are ignored (the Hugging Face copy of IFEval stores every
// kwarg key on every instruction, null where unused). A missing required kwarg, a wrong type, an
// unknown relation or an unknown instruction id throws a BadRecord naming `kwargs[i].<key>`.
import { BadRecord } from './bad-record.js';

export const IFEVAL_INSTRUCTION_IDS = [
  'keywords:existence',
  'keywords:frequency',
  'keywords:forbidden_words',
  'keywords:letter_frequency',
  'language:response_language',
  'length_constraints:number_sentences',
  'length_constraints:number_paragraphs',
  'length_constraints:number_words',
  'length_constraints:nth_paragraph_first_word',
  'detectable_content:number_placeholders',
  'detectable_content:postscript',
  'detectable_format:number_bullet_lists',
  'detectable_format:constrained_response',
  'detectable_format:number_highlighted_sections',
  'detectable_format:multiple_sections',
  'detectable_format:json_format',
  'detectable_format:title',
  'combination:two_responses',
  'combination:repeat_prompt',
  'startend:end_checker',
  'startend:quotation',
  'change_case:capital_word_frequency',
  'change_case:english_capital',
  'change_case:english_lowercase',
  'punctuation:no_comma',
] as const;

export type IfevalInstructionId = (typeof IFEVAL_INSTRUCTION_IDS)[number];

/** ISO 639-1 codes → English names (the langdetect languages IFEval draws from, plus common ones). */
export const LANGUAGE_NAMES: Record<string, string> = {
  af: 'Afrikaans', ar: 'Arabic', bg: 'Bulgarian', bn: 'Bengali', ca: 'Catalan', cs: 'Czech', cy: 'Welsh',
  da: 'Danish', de: 'German', el: 'Greek', en: 'English', es: 'Spanish', et: 'Estonian', fa: 'Persian',
  fi: 'Finnish', fr: 'French', gu: 'Gujarati', he: 'Hebrew', hi: 'Hindi', hr: 'Croatian', hu: 'Hungarian',
  id: 'Indonesian', it: 'Italian', ja: 'Japanese', kn: 'Kannada', ko: 'Korean', lt: 'Lithuanian',
  lv: 'Latvian', mk: 'Macedonian', ml: 'Malayalam', mr: 'Marathi', ne: 'Nepali', nl: 'Dutch',
  no: 'Norwegian', pa: 'Punjabi', pl: 'Polish', pt: 'Portuguese', ro: 'Romanian', ru: 'Russian',
  sk: 'Slovak', sl: 'Slovenian', so: 'Somali', sq: 'Albanian', sv: 'Swedish', sw: 'Swahili', ta: 'Tamil',
  te: 'Telugu', th: 'Thai', tl: 'Tagalog', tr: 'Turkish', uk: 'Ukrainian', ur: 'Urdu', vi: 'Vietnamese',
  'zh-cn': 'Chinese', 'zh-tw': 'Chinese', zh: 'Chinese',
};

type Kwargs = Record<string, unknown>;

/**
 * The constraint sentence for one IFEval instruction. `field` names the kwargs entry in errors
 * (e.g. "kwargs[2]").
 */
export function renderIfevalConstraint(id: string, kwargs: Kwargs | null | undefined, field = 'kwargs'): string {
  const kw: Kwargs = kwargs ?? {};
  const str = (key: string): string => {
    const v = kw[key];
    if (typeof v !== 'string' || !v.trim()) throw new BadRecord(`field ${field}.${key} must be a non-empty string for ${id}`);
    return v.trim();
  };
  const int = (key: string): number => {
    const v = kw[key];
    const n = typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) throw new BadRecord(`field ${field}.${key} must be a non-negative integer for ${id}`);
    return n;
  };
  const list = (key: string): string[] => {
    const v = kw[key];
    if (!Array.isArray(v) || v.length === 0 || v.some((s) => typeof s !== 'string' || !s.trim())) {
      throw new BadRecord(`field ${field}.${key} must be a non-empty list of strings for ${id}`);
    }
    return v.map((s: string) => s.trim());
  };
  /** "at least" / "less than" phrase; IFEval's only two relations. */
  const rel = (key: string): string => {
    const r = str(key).toLowerCase();
    if (r !== 'at least' && r !== 'less than') throw new BadRecord(`field ${field}.${key}: unknown relation ${JSON.stringify(kw[key])} for ${id} (expected "at least" or "less than")`);
    return r;
  };
  const quoted = (xs: string[]): string => xs.map((x) => JSON.stringify(x)).join(', ');
  const times = (n: number): string => (n === 1 ? '1 time' : `${n} times`);

  switch (id) {
    case 'keywords:existence': {
      const ks = list('keywords');
      return ks.length === 1 ? `Include the keyword ${quoted(ks)} in your response.` : `Include the keywords ${quoted(ks)} in your response.`;
    }
    case 'keywords:frequency':
      return `In your response, the word ${JSON.stringify(str('keyword'))} should appear ${rel('relation')} ${times(int('frequency'))}.`;
    case 'keywords:forbidden_words': {
      const ws = list('forbidden_words');
      return ws.length === 1 ? `Do not include the word ${quoted(ws)} in your response.` : `Do not include the words ${quoted(ws)} in your response.`;
    }
    case 'keywords:letter_frequency':
      return `In your response, the letter ${JSON.stringify(str('letter'))} should appear ${rel('let_relation')} ${times(int('let_frequency'))}.`;
    case 'language:response_language': {
      const code = str('language');
      const name = LANGUAGE_NAMES[code.toLowerCase()];
      const lang = name ?? `the language with ISO 639-1 code "${code}"`;
      return `Your entire response should be in ${lang}, no other language is allowed.`;
    }
    case 'length_constraints:number_sentences':
      return `Your response should contain ${rel('relation')} ${int('num_sentences')} sentences.`;
    case 'length_constraints:number_paragraphs': {
      const n = int('num_paragraphs');
      return `There should be ${n} ${n === 1 ? 'paragraph' : 'paragraphs'}. Paragraphs are separated with the markdown divider: ***`;
    }
    case 'length_constraints:number_words':
      return `Answer with ${rel('relation')} ${int('num_words')} words.`;
    case 'length_constraints:nth_paragraph_first_word': {
      const n = int('num_paragraphs');
      const nth = int('nth_paragraph');
      return `There should be ${n} ${n === 1 ? 'paragraph' : 'paragraphs'}. Paragraphs and only paragraphs are separated with each other by two new lines. The ${ordinal(nth)} paragraph must start with the word ${JSON.stringify(str('first_word'))}.`;
    }
    case 'detectable_content:number_placeholders':
      return `The response must contain at least ${int('num_placeholders')} placeholders represented by square brackets, such as [address].`;
    case 'detectable_content:postscript':
      return `At the end of your response, please explicitly add a postscript starting with ${JSON.stringify(str('postscript_marker'))}.`;
    case 'detectable_format:number_bullet_lists': {
      const n = int('num_bullets');
      return `Your answer must contain exactly ${n} bullet ${n === 1 ? 'point' : 'points'}. Use the markdown bullet points such as: * This is a point.`;
    }
    case 'detectable_format:constrained_response':
      return 'Answer with one of the following options: "My answer is yes.", "My answer is no.", "My answer is maybe."';
    case 'detectable_format:number_highlighted_sections':
      return `Highlight at least ${int('num_highlights')} sections in your answer with markdown, i.e. *highlighted section*.`;
    case 'detectable_format:multiple_sections': {
      const s = str('section_spliter');
      const n = int('num_sections');
      return `Your response must have ${n} ${n === 1 ? 'section' : 'sections'}. Mark the beginning of each section with ${s} X, such as: ${s} 1.`;
    }
    case 'detectable_format:json_format':
      return 'Entire output should be wrapped in JSON format. You can use markdown ticks such as ```.';
    case 'detectable_format:title':
      return 'Your answer must contain a title, wrapped in double angular brackets, such as <<poem of joy>>.';
    case 'combination:two_responses':
      return 'Give two different responses. Responses and only responses should be separated by 6 asterisk symbols: ******.';
    case 'combination:repeat_prompt':
      return `First repeat the request word for word without change, then give your answer (do not say anything before repeating the request). The request is: ${str('prompt_to_repeat')}`;
    case 'startend:end_checker':
      return `Finish your response with this exact phrase: ${JSON.stringify(str('end_phrase'))}. No other words should follow this phrase.`;
    case 'startend:quotation':
      return 'Wrap your entire response with double quotation marks.';
    case 'change_case:capital_word_frequency':
      return `In your response, words with all capital letters should appear ${rel('capital_relation')} ${times(int('capital_frequency'))}.`;
    case 'change_case:english_capital':
      return 'Your entire response should be in English, and in all capital letters.';
    case 'change_case:english_lowercase':
      return 'Your entire response should be in English, and in all lowercase letters. No capital letters are allowed.';
    case 'punctuation:no_comma':
      return 'Do not use any commas in your response.';
    default:
      throw new BadRecord(`unknown IFEval instruction id ${JSON.stringify(id)}`);
  }
}

function ordinal(n: number): string {
  const s = n % 100 >= 11 && n % 100 <= 13 ? 'th' : n % 10 === 1 ? 'st' : n % 10 === 2 ? 'nd' : n % 10 === 3 ? 'rd' : 'th';
  return `${n}${s}`;
}
