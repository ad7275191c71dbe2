import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ChatTemplate,
  encodeConversation,
  encodePrompt,
  generationPrompt,
  pickChatTemplate,
  PLAIN_CHAT_TEMPLATE,
  renderPrompt,
  strftime,
  withToolCallIds,
  type ChatMessage,
  type EncodedConversation,
} from '../src/io/chat.js';
import { HfTokenizer } from '../src/io/hf-tokenizer.js';
import { Llama2cTokenizer } from '../src/io/llama2c-tokenizer.js';
import type { Tokenizer } from '../src/tokenizer.js';
import { MixtuneError } from '../src/util/errors.js';
import { sharedDir } from '../src/util/paths.js';

const F = join(sharedDir(), 'fixtures');
let mistralTok: HfTokenizer | undefined;
const mistral = (): HfTokenizer => (mistralTok ??= HfTokenizer.load(join(F, 'mistral-v0.3')));
let qwenTok: HfTokenizer | undefined;
const qwen = (): HfTokenizer => (qwenTok ??= HfTokenizer.load(join(F, 'qwen2.5')));
const tok512 = (): Llama2cTokenizer => Llama2cTokenizer.load(join(F, 'stories260K', 'tok512.bin'));

const CONV: ChatMessage[] = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'Hi there' },
  { role: 'assistant', content: 'Hello! How can I help?' },
  { role: 'user', content: 'What is 2+2?' },
  { role: 'assistant', content: '4' },
];

/** Decoded text of every maximal run of labelled tokens (special tokens as text, leading spaces kept). */
function labelledRuns(tok: Tokenizer & { decode(ids: readonly number[], o?: { special?: boolean; prev?: number }): string }, r: EncodedConversation): string[] {
  const runs: string[] = [];
  let t = 0;
  while (t < r.ids.length) {
    if (r.labels[t] === -100) {
      t++;
      continue;
    }
    const s = t;
    while (t < r.ids.length && r.labels[t] !== -100) {
      assert.equal(r.labels[t], r.ids[t]);
      t++;
    }
    runs.push(tok.decode(r.ids.slice(s, t), { special: true, prev: r.ids[s - 1] ?? 0 }));
  }
  return runs;
}

test('Mistral v0.3: the mistral-common sample renders and encodes to the exact v3 ids; masks cover " content</s>"', () => {
  const tok = mistral();
  const tpl = ChatTemplate.forTokenizer(tok);
  const dir = join(F, 'mistral-v0.3', 'mistral-common-samples');
  const sample = JSON.parse(readFileSync(join(dir, 'sample.json'), 'utf8')) as { messages: ChatMessage[] };
  const expected = (JSON.parse(readFileSync(join(dir, 'tokens_v3.json'), 'utf8')) as { tokens: number[] }).tokens;
  const msgs = sample.messages.map(({ role, content }) => ({ role, content }));
  assert.deepEqual(encodePrompt(tok, tpl, msgs), expected);
  // the conversation up to the last assistant turn, trained on assistant turns
  const r = encodeConversation(tok, tpl, msgs.slice(0, 6));
  assert.deepEqual(r.ids, expected.slice(0, r.ids.length));
  assert.deepEqual(labelledRuns(tok, r), [' The result of 5 + 5 is 10.</s>', ' The square root of 64 is 8, because 8 x 8 equals 64.</s>', ' Sure! The result of 10 x 8 is 80.</s>']);
  assert.equal(r.assistantSpans.length, 3);
  for (const s of r.assistantSpans) {
    assert.equal(r.ids[s.start - 1], 4); // [/INST] just before: Mistral has no generation prompt
    assert.equal(s.header, s.start);
    assert.equal(r.ids[s.end - 1], 2);
  }
  // the prompt an inference run would see is exactly the tokens before each span
  for (const [k, i] of [1, 3, 5].entries()) assert.deepEqual(encodePrompt(tok, tpl, msgs.slice(0, i)), r.ids.slice(0, r.assistantSpans[k]!.start));
  const last = encodeConversation(tok, tpl, msgs.slice(0, 6), { trainOn: 'last' });
  assert.deepEqual(labelledRuns(tok, last), [' Sure! The result of 10 x 8 is 80.</s>']);
  const all = encodeConversation(tok, tpl, msgs.slice(0, 6), { trainOn: 'all' });
  assert.deepEqual(all.labels, all.ids);
  assert.deepEqual(generationPrompt(tok, tpl), { text: '', ids: [] });
});

test('Mistral v0.3: the system prompt only renders inside the LAST user turn — masks still exact, drops reported', () => {
  const tok = mistral();
  const tpl = ChatTemplate.forTokenizer(tok);
  // ending with an assistant turn, the template drops the system prompt (as in transformers)
  const r = encodeConversation(tok, tpl, CONV);
  assert.equal(r.text, '<s>[INST] Hi there[/INST] Hello! How can I help?</s>[INST] What is 2+2?[/INST] 4</s>');
  assert.deepEqual(r.droppedMessages, [0]);
  assert.deepEqual(labelledRuns(tok, r), [' Hello! How can I help?</s>', ' 4</s>']);
  // ending with a user turn it is in the last user turn, so earlier prefixes differ from the full
  // rendering (the marker path finds the spans)
  const msgs = [...CONV, { role: 'user', content: 'Thanks' }];
  const r2 = encodeConversation(tok, tpl, msgs);
  assert.equal(r2.text, '<s>[INST] Hi there[/INST] Hello! How can I help?</s>[INST] What is 2+2?[/INST] 4</s>[INST] You are terse.\n\nThanks[/INST]');
  assert.deepEqual(r2.droppedMessages, []);
  assert.deepEqual(labelledRuns(tok, r2), [' Hello! How can I help?</s>', ' 4</s>']);
  const r3 = encodeConversation(tok, tpl, CONV.slice(1));
  assert.deepEqual(r3.droppedMessages, []);
  assert.deepEqual(labelledRuns(tok, r3), [' Hello! How can I help?</s>', ' 4</s>']);
  assert.deepEqual(r3.ids, r.ids);
});

test('Mistral v0.3: raise_exception (role alternation) and bad conversations are MixtuneErrors', () => {
  const tok = mistral();
  const tpl = ChatTemplate.forTokenizer(tok);
  const twoUsers = [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }, { role: 'assistant', content: 'c' }];
  assert.throws(() => encodeConversation(tok, tpl, twoUsers), (e: unknown) => e instanceof MixtuneError && /rejected the conversation: After the optional system message, conversation roles must alternate/.test(e.message));
  assert.throws(() => encodeConversation(tok, tpl, [{ role: 'robot', content: 'x' }]), (e: unknown) => e instanceof MixtuneError && /message 0 has unknown role "robot"/.test(e.message));
  assert.throws(() => encodeConversation(tok, tpl, [{ role: 'user', content: 'x' }, { role: 'assistant', content: '  ' }]), /message 1 is an empty assistant turn/);
  assert.throws(() => encodeConversation(tok, tpl, [{ role: 'user', content: 'x' }]), /no assistant turn/);
  assert.throws(() => encodeConversation(tok, tpl, [{ role: 'user', content: 3 } as unknown as ChatMessage]), /no string content/);
  assert.throws(() => encodeConversation(tok, tpl, 'hi' as unknown as ChatMessage[], { where: 'data.jsonl:7' }), /data\.jsonl:7: messages must be a list/);
  assert.throws(() => encodeConversation(tok, tpl, CONV, { trainOn: 'some' as 'all' }), /train_on/);
  // 'all' needs no assistant turn
  const u = encodeConversation(tok, tpl, [{ role: 'user', content: 'x' }], { trainOn: 'all' });
  assert.deepEqual(u.labels, u.ids);
});

test('Qwen2.5 (fixture template == llama.cpp templates/Qwen-Qwen2.5-7B-Instruct.jinja): masks are content + <|im_end|>, not the newline', () => {
  const tok = qwen();
  const tpl = ChatTemplate.forTokenizer(tok);
  const jinja = readFileSync(join(F, 'llama.cpp', 'templates', 'Qwen-Qwen2.5-7B-Instruct.jinja'), 'utf8');
  assert.equal(tpl.text, jinja);
  const r = encodeConversation(tok, tpl, CONV);
  assert.equal(
    r.text,
    '<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\nHello! How can I help?<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n',
  );
  assert.deepEqual(labelledRuns(tok, r), ['Hello! How can I help?<|im_end|>', '4<|im_end|>']);
  const gp = generationPrompt(tok, tpl);
  assert.equal(gp.text, '<|im_start|>assistant\n');
  assert.deepEqual(gp.ids, [151644, tok.tokenToId('assistant'), tok.tokenToId('Ċ')]);
  for (const s of r.assistantSpans) {
    assert.deepEqual(r.ids.slice(s.header, s.start), gp.ids); // header = the generation prompt
    assert.equal(r.ids[s.end - 1], 151645);
    assert.equal(r.ids[s.end], tok.tokenToId('Ċ')); // the "\n" after <|im_end|> is not trained
  }
  // inference prompt == the tokens before each span
  assert.deepEqual(encodePrompt(tok, tpl, CONV.slice(0, 2)), r.ids.slice(0, r.assistantSpans[0]!.start));
  assert.deepEqual(encodePrompt(tok, tpl, CONV.slice(0, 4)), r.ids.slice(0, r.assistantSpans[1]!.start));
  assert.ok(renderPrompt(tpl, CONV.slice(0, 4)).endsWith('What is 2+2?<|im_end|>\n<|im_start|>assistant\n'));
  // default system prompt without a system message
  assert.ok(tpl.render(CONV.slice(1)).startsWith('<|im_start|>system\nYou are Qwen, created by Alibaba Cloud.'));
  assert.deepEqual(labelledRuns(tok, encodeConversation(tok, tpl, CONV, { trainOn: 'last' })), ['4<|im_end|>']);
  const all = encodeConversation(tok, tpl, CONV, { trainOn: 'all' });
  assert.deepEqual(all.labels, all.ids);
});

test('Qwen2.5: a token straddling the header/content boundary is trained; tokens come from the whole rendering', () => {
  const tok = qwen();
  const tpl = ChatTemplate.forTokenizer(tok);
  const msgs = [{ role: 'user', content: 'hi' }, { role: 'assistant', content: '\nIndented answer' }];
  const r = encodeConversation(tok, tpl, msgs);
  assert.deepEqual(r.ids, tok.encodeWithSpecials(r.text));
  // "assistant\n" + "\nIndented": the two newlines are one token "ĊĊ", which starts in the header
  const runs = labelledRuns(tok, r);
  assert.equal(runs.length, 1);
  assert.equal(runs[0], '\n\nIndented answer<|im_end|>');
  assert.equal(tok.idToToken(r.ids[r.assistantSpans[0]!.start]!), 'ĊĊ');
});

test('Qwen2.5: maxLen truncates ids, labels and spans (and says so)', () => {
  const tok = qwen();
  const tpl = ChatTemplate.forTokenizer(tok);
  const full = encodeConversation(tok, tpl, CONV);
  const r = encodeConversation(tok, tpl, CONV, { maxLen: full.assistantSpans[0]!.start + 2 });
  assert.equal(r.truncated, true);
  assert.equal(r.ids.length, full.assistantSpans[0]!.start + 2);
  assert.deepEqual(r.ids, full.ids.slice(0, r.ids.length));
  assert.deepEqual(r.labels, full.labels.slice(0, r.ids.length));
  assert.equal(r.assistantSpans.length, 1);
  assert.equal(r.assistantSpans[0]!.end, r.ids.length);
  assert.equal(encodeConversation(tok, tpl, CONV, { maxLen: 10_000 }).truncated, false);
  assert.throws(() => encodeConversation(tok, tpl, CONV, { maxLen: 0 }), /maxLen/);
});

test('plain template with the llama2.c 512-token vocabulary: EOS as id 2, masks content + EOS', () => {
  const tok = tok512();
  const tpl = ChatTemplate.forTokenizer(tok);
  assert.ok(tpl.isPlain);
  assert.equal(tpl.text, PLAIN_CHAT_TEMPLATE);
  const r = encodeConversation(tok, tpl, CONV);
  assert.equal(r.text, '<s>### System:\nYou are terse.\n\n### User:\nHi there\n\n### Assistant:\nHello! How can I help?</s>\n\n### User:\nWhat is 2+2?\n\n### Assistant:\n4</s>');
  assert.equal(r.ids[0], 1);
  assert.equal(r.ids.filter((x) => x === 1).length, 1);
  assert.equal(r.ids.filter((x) => x === 2).length, 2);
  const runs: number[][] = [];
  for (const s of r.assistantSpans) runs.push(r.labels.slice(s.start, s.end));
  assert.deepEqual(
    runs.map((ids) => ids.at(-1)),
    [2, 2],
  );
  assert.deepEqual(runs.map((ids) => tok.decode(ids.slice(0, -1))), ['Hello! How can I help?', '4']);
  assert.equal(r.labels.filter((x) => x !== -100).length, runs[0]!.length + runs[1]!.length);
  // the content starts on a token boundary: the prompt encodes to exactly the tokens before it
  assert.deepEqual(encodePrompt(tok, tpl, CONV.slice(0, 2)), r.ids.slice(0, r.assistantSpans[0]!.start));
  assert.deepEqual(encodePrompt(tok, tpl, CONV.slice(0, 4)), r.ids.slice(0, r.assistantSpans[1]!.start));
  const gp = generationPrompt(tok, tpl);
  assert.equal(gp.text, '\n\n### Assistant:\n');
  assert.deepEqual(r.ids.slice(r.assistantSpans[1]!.header, r.assistantSpans[1]!.start), generationPrompt(tok, tpl, CONV.slice(0, 4)).ids);
  assert.equal(renderPrompt(tpl, [{ role: 'user', content: 'Tell me a story.' }]), '<s>### User:\nTell me a story.\n\n### Assistant:\n');
  assert.equal(renderPrompt(tpl, []), '<s>### Assistant:\n');
  assert.throws(() => encodeConversation(tok, tpl, [{ role: 'wizard', content: 'x' }, { role: 'assistant', content: 'y' }]), /unknown role "wizard"/);
});

test('plain template for an HF tokenizer without chat_template (Llama 2): "</s>" becomes EOS id', () => {
  const tok = HfTokenizer.load(join(F, 'llama2-tokenizer'));
  const tpl = ChatTemplate.forTokenizer(tok);
  assert.ok(tpl.isPlain);
  const r = encodeConversation(tok, tpl, CONV.slice(1, 3));
  assert.equal(r.ids[0], 1);
  assert.equal(r.ids.at(-1), 2);
  assert.deepEqual(labelledRuns(tok, r), ['Hello! How can I help?</s>']);
});

test('chat_template lists/dicts, jinja globals, parse errors', () => {
  const tpl = 'x';
  assert.equal(pickChatTemplate([{ name: 'tool_use', template: 'T' }, { name: 'default', template: 'D' }], 'cfg'), 'D');
  assert.equal(pickChatTemplate({ default: 'D' }, 'cfg'), 'D');
  assert.equal(pickChatTemplate(tpl, 'cfg'), 'x');
  assert.equal(pickChatTemplate(null, 'cfg'), undefined);
  assert.throws(() => pickChatTemplate([{ name: 'rag', template: 'R' }], 'cfg'), /no template named "default"/);
  assert.throws(() => pickChatTemplate(5, 'cfg'), MixtuneError);
  const t = new ChatTemplate("{{ range(3) | join(',') }}|{{ strftime_now('%Y') }}|{{ bos_token }}{{ messages|length }}{% if tools is defined %}T{% endif %}", { bosToken: 'B' });
  assert.equal(t.render([]), `0,1,2|${new Date().getFullYear()}|B0`);
  assert.equal(t.render([], { tools: [] }), `0,1,2|${new Date().getFullYear()}|B0T`);
  assert.equal(strftime(new Date(2024, 6, 26, 15, 4, 5), '%d %b %Y %H:%M:%S %B %A %p'), '26 Jul 2024 15:04:05 July Friday PM');
  assert.throws(() => new ChatTemplate('{% if %}'), /cannot parse the chat template/);
  assert.throws(() => new ChatTemplate('{{ raise_exception("nope") }}').render([]), /rejected the conversation: nope/);
  assert.throws(() => new ChatTemplate('{{ foo.bar.baz() }}').render([]), MixtuneError);
  // Llama 3.1 template from llama.cpp renders (date_string default, system header)
  const l3 = new ChatTemplate(readFileSync(join(F, 'llama.cpp', 'templates', 'meta-llama-Llama-3.1-8B-Instruct.jinja'), 'utf8'), { bosToken: '<|begin_of_text|>', eosToken: '<|eot_id|>' });
  const out = l3.render([{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Yo' }]);
  assert.ok(out.startsWith('<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n'), out);
  assert.ok(out.endsWith('<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nYo<|eot_id|>'), out);
});

// ---------------------------------------------------------------- tool use

const TOOLS = [{ type: 'function', function: { name: 'get_weather', description: 'Current weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];
const TOOL_CONV: ChatMessage[] = [
  { role: 'system', content: 'You can call tools.' },
  { role: 'user', content: 'Weather in Paris?' },
  { role: 'assistant', content: '', tool_calls: [{ type: 'function', function: { name: 'get_weather', arguments: { city: 'Paris' } } }] },
  { role: 'tool', content: '{"temp": 21}' },
  { role: 'assistant', content: 'It is 21 degrees.' },
];
const CALL_TEXT = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>';
const TOOL_JSON = '{"name": "get_weather", "description": "Current weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}';

test('plain template: tool list after the system block, tool calls in <tool_call> blocks (trained), tool results as their own turn (not trained)', () => {
  const tok = tok512();
  const tpl = ChatTemplate.forTokenizer(tok);
  const r = encodeConversation(tok, tpl, TOOL_CONV, { tools: TOOLS });
  assert.equal(r.text,
    '<s>### System:\nYou can call tools.\n\n### Tools:\n' + TOOL_JSON + '\n\n### User:\nWeather in Paris?\n\n### Assistant:\n' + CALL_TEXT + '</s>' +
    '\n\n### Tool result:\n{"temp": 21}\n\n### Assistant:\nIt is 21 degrees.</s>');
  assert.equal(r.assistantSpans.length, 2);
  const runs = r.assistantSpans.map((s) => r.labels.slice(s.start, s.end));
  assert.deepEqual(runs.map((ids) => ids.at(-1)), [tok.eosId, tok.eosId]);
  assert.deepEqual(runs.map((ids) => tok.decode(ids.slice(0, -1))), [CALL_TEXT, 'It is 21 degrees.']);
  assert.equal(r.labels.filter((x) => x !== -100).length, runs[0]!.length + runs[1]!.length); // the tool result and the tool list carry no loss
  // the prompt before each assistant turn (incl. after a tool result) encodes to exactly the tokens before its span
  assert.deepEqual(encodePrompt(tok, tpl, TOOL_CONV.slice(0, 2), { tools: TOOLS }), r.ids.slice(0, r.assistantSpans[0]!.start));
  assert.deepEqual(encodePrompt(tok, tpl, TOOL_CONV.slice(0, 4), { tools: TOOLS }), r.ids.slice(0, r.assistantSpans[1]!.start));
  assert.ok(renderPrompt(tpl, TOOL_CONV.slice(0, 4), { tools: TOOLS }).endsWith('### Tool result:\n{"temp": 21}\n\n### Assistant:\n'));
  // no system prompt: the tool list opens the conversation; content before a call; two calls
  const two: ChatMessage[] = [
    { role: 'user', content: 'Paris and Rome?' },
    { role: 'assistant', content: 'Checking.', tool_calls: [
      { type: 'function', function: { name: 'get_weather', arguments: { city: 'Paris' } } },
      { type: 'function', function: { name: 'get_weather', arguments: { city: 'Rome' } } },
    ] },
  ];
  assert.equal(tpl.render(two, { tools: TOOLS }),
    '<s>### Tools:\n' + TOOL_JSON + '\n\n### User:\nParis and Rome?\n\n### Assistant:\nChecking.\n' + CALL_TEXT +
    '\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call></s>');
  assert.equal(renderPrompt(tpl, [], { tools: TOOLS }), '<s>### Tools:\n' + TOOL_JSON + '\n\n### Assistant:\n');
  // without tools the rendering is the one of the previous template
  assert.equal(tpl.render(CONV.slice(0, 3)), '<s>### System:\nYou are terse.\n\n### User:\nHi there\n\n### Assistant:\nHello! How can I help?</s>');
  // tool_calls: null is no call (HF convention)
  assert.equal(tpl.render([{ role: 'user', content: 'x' }, { role: 'assistant', content: 'y', tool_calls: null as never }]), '<s>### User:\nx\n\n### Assistant:\ny</s>');
  assert.equal(encodeConversation(tok, tpl, [{ role: 'user', content: 'x' }, { role: 'assistant', content: 'y', tool_calls: null as never }]).assistantSpans.length, 1);
  // an assistant turn must say or call something
  assert.throws(() => encodeConversation(tok, tpl, [{ role: 'user', content: 'x' }, { role: 'assistant', content: '', tool_calls: [] }]), /empty assistant turn/);
  assert.throws(() => encodeConversation(tok, tpl, [{ role: 'user', content: 'x' }, { role: 'assistant', content: '', tool_calls: [{ type: 'function', function: { arguments: {} } } as never] }]), /tool_calls\[0\] must be/);
});

test('tool-call ids: filled in as 9-character ids in conversation order; results answer the earliest open call', () => {
  const calls = (...names: string[]): ChatMessage => ({ role: 'assistant', content: '', tool_calls: names.map((name) => ({ type: 'function' as const, function: { name, arguments: {} } })) });
  const out = withToolCallIds([calls('a', 'b'), { role: 'tool', content: '1' }, { role: 'tool', content: '2' }, calls('c'), { role: 'tool', content: '3', tool_call_id: 'mine' }]);
  assert.deepEqual(out.flatMap((m) => m.tool_calls?.map((c) => c.id) ?? []), ['call00001', 'call00002', 'call00003']);
  assert.deepEqual(out.filter((m) => m.role === 'tool').map((m) => m.tool_call_id), ['call00001', 'call00002', 'mine']);
});

test('Qwen2.5: tools in the system block, tool_calls as <tool_call> JSON, results as <tool_response>; calls trained, results not', () => {
  const tok = qwen();
  const tpl = ChatTemplate.forTokenizer(tok);
  const r = encodeConversation(tok, tpl, TOOL_CONV, { tools: TOOLS });
  assert.ok(r.text.startsWith('<|im_start|>system\nYou can call tools.\n\n# Tools\n'), r.text);
  assert.ok(r.text.includes('<tools>\n{"type": "function", "function": ' + TOOL_JSON + '}\n</tools>'), r.text);
  assert.ok(r.text.includes('<|im_start|>assistant\n' + CALL_TEXT + '<|im_end|>\n<|im_start|>user\n<tool_response>\n{"temp": 21}\n</tool_response><|im_end|>\n'), r.text);
  assert.deepEqual(labelledRuns(tok, r), [CALL_TEXT + '<|im_end|>', 'It is 21 degrees.<|im_end|>']);
});

test('Mistral v0.3: [AVAILABLE_TOOLS] before the last user turn, [TOOL_CALLS] with ids trained, [TOOL_RESULTS] not', () => {
  const tok = mistral();
  const tpl = ChatTemplate.forTokenizer(tok);
  // two user turns: the tool list moves to the last one, so prefixes differ and the marker path runs
  const msgs: ChatMessage[] = [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello!' }, ...TOOL_CONV.slice(1)];
  const r = encodeConversation(tok, tpl, msgs, { tools: TOOLS });
  const call = '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call00001"}]</s>';
  assert.equal(r.text,
    '<s>[INST] Hi[/INST] Hello!</s>[AVAILABLE_TOOLS] [{"type": "function", "function": ' + TOOL_JSON + '}][/AVAILABLE_TOOLS][INST] Weather in Paris?[/INST]' +
    call + '[TOOL_RESULTS] {"content": {"temp": 21}, "call_id": "call00001"}[/TOOL_RESULTS] It is 21 degrees.</s>');
  assert.deepEqual(labelledRuns(tok, r), [' Hello!</s>', call, ' It is 21 degrees.</s>']);
  assert.deepEqual(r.ids.slice(0, r.assistantSpans[1]!.start), encodePrompt(tok, tpl, msgs.slice(0, 3), { tools: TOOLS }));
});

test('a template without tool support (original Llama 3) is an error naming the record, not a silently dropped call', () => {
  const tok = HfTokenizer.load(join(F, 'llama3'));
  const tpl = ChatTemplate.forTokenizer(tok);
  assert.throws(() => encodeConversation(tok, tpl, TOOL_CONV, { where: 'data.json#3' }), (e: unknown) => e instanceof MixtuneError && /^data\.json#3: .*does not render tool calls \(message 2 calls a tool\); choose a template with tool support \(data\.chat_template\)/.test(e.message));
  assert.throws(() => encodeConversation(tok, tpl, CONV.slice(1, 3), { tools: TOOLS, where: 'data.json#4' }), /data\.json#4: .*does not render the tool list/);
});
