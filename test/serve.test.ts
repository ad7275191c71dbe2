// `mixtune serve` against the official `openai` client on a loopback port: answers equal
// `mixtune generate`, streaming, MISO over the API, every error status, queueing, cancellation,
// concurrency, memory stability and SIGTERM.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { packageRoot, sharedDir } from '../src/util/paths.js';
import { saveHfModel } from '../src/io/hf-model.js';
import { loadTokenizer } from '../src/io/load.js';
import type { LlamaConfig } from '../src/model/config.js';
import { StopStrings } from '../src/serve/stop-strings.js';
import { CancelledError, QueueFullError, RequestQueue } from '../src/serve/queue.js';
import { randomWeights, runCli } from './util.js';

const bin = join(packageRoot(), 'bin', 'mixtune.js');
const storiesTok = join(sharedDir(), 'fixtures', 'stories260K', 'tok512.bin');

interface Server {
  url: string;
  proc: ChildProcess;
  log: () => string;
  /** SIGTERM; resolves to the exit code. */
  stop: () => Promise<number | null>;
}

async function startServer(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Server> {
  const proc = spawn(process.execPath, [bin, 'serve', '--port', '0', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not start:\n${err}`)), 30_000);
    const check = (): void => {
      const m = /on (http:\/\/[^\s]+\/v1) /.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    proc.stderr!.on('data', check);
    void exited.then((code) => reject(new Error(`the server exited with ${code}:\n${err}`)));
  });
  return {
    url, proc, log: () => err,
    stop: async () => {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      return exited;
    },
  };
}

const client = (s: Server, apiKey = 'unused'): OpenAI => new OpenAI({ baseURL: s.url, apiKey, maxRetries: 0, timeout: 120_000 });

/** `mixtune generate` stdout without its final newline. */
function cliGenerate(...args: string[]): string {
  const r = runCli('generate', '--temperature', '0', ...args);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdout.endsWith('\n'));
  return r.stdout.slice(0, -1);
}

/** Raw HTTP: status, headers and body text. */
async function raw(url: string, init: RequestInit = {}): Promise<{ status: number; headers: Headers; text: string; json: () => any }> {
  const r = await fetch(url, init);
  const text = await r.text();
  return { status: r.status, headers: r.headers, text, json: () => JSON.parse(text) };
}

function vmRssKb(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]);
}

let stories: Server;
before(async () => {
  stories = await startServer(['--model', 'stories260K', '--quiet']);
});
after(async () => {
  await stories?.stop();
});

const PROMPTS = ['Tell me a story', 'Write about a cat named Tom.', 'What did Lily find in the park?'];

test('serve: greedy chat completions equal `mixtune generate --chat --temperature 0`, streamed or not; usage counts tokens', async () => {
  const api = client(stories);
  for (const [i, prompt] of PROMPTS.entries()) {
    const n = 20 + 30 * i;
    const want = cliGenerate('--model', 'stories260K', '--chat', '--prompt', prompt, '--max-new-tokens', String(n));
    const r = await api.chat.completions.create({ model: 'stories260K', messages: [{ role: 'user', content: prompt }], max_tokens: n, temperature: 0 });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.model, 'stories260K');
    assert.equal(r.choices.length, 1);
    assert.equal(r.choices[0]!.message.role, 'assistant');
    assert.equal(r.choices[0]!.message.content, want, `prompt ${i}`);
    assert.ok(['stop', 'length'].includes(r.choices[0]!.finish_reason));
    const u = r.usage!;
    assert.ok(u.prompt_tokens > 5 && u.completion_tokens >= 1 && u.completion_tokens <= n, JSON.stringify(u));
    assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
    if (r.choices[0]!.finish_reason === 'length') assert.equal(u.completion_tokens, n);

    const stream = await api.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: prompt }], max_tokens: n, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | null | undefined;
    let chunks = 0;
    for await (const c of stream) {
      chunks++;
      if (c.usage) usage = c.usage;
      for (const ch of c.choices) {
        text += ch.delta.content ?? '';
        if (ch.finish_reason) finish = ch.finish_reason;
      }
    }
    assert.equal(text, want, `streamed prompt ${i}`);
    assert.equal(finish, r.choices[0]!.finish_reason);
    assert.deepEqual(usage, u);
    assert.ok(chunks > 3, 'the answer arrives in several chunks');
  }
  // a system prompt and a multi-turn conversation render through the chat template as the CLI's --system does
  const want = cliGenerate('--model', 'stories260K', '--chat', '--system', 'You tell short stories.', '--prompt', 'A story about a dog', '--max-new-tokens', '40');
  const r = await api.chat.completions.create({ model: 'x', messages: [{ role: 'system', content: 'You tell short stories.' }, { role: 'user', content: [{ type: 'text', text: 'A story about ' }, { type: 'text', text: 'a dog' }] }], max_tokens: 40, temperature: 0 });
  assert.equal(r.choices[0]!.message.content, want);
});

test('serve: the SSE stream is data: chunks ending in data: [DONE]', async () => {
  const r = await raw(`${stories.url}/chat/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'user', content: 'Hi' }], max_tokens: 8, temperature: 0, stream: true }),
  });
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type')!, /^text\/event-stream/);
  const events = r.text.split('\n\n').filter(Boolean);
  assert.equal(events.at(-1), 'data: [DONE]');
  for (const e of events) assert.match(e, /^data: /);
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)));
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0].id));
  assert.ok(chunks.at(-1).choices[0].finish_reason);
});

test('serve: completions equal `mixtune generate --prompt`; stop strings end the text before them; echo; token prompts', async () => {
  const api = client(stories);
  const want = cliGenerate('--model', 'stories260K', '--prompt', 'Once upon a time', '--max-new-tokens', '60');
  const r = await api.completions.create({ model: 'x', prompt: 'Once upon a time', max_tokens: 60, temperature: 0 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices[0]!.text, want);
  // stop: the text up to (not including) the first occurrence; streamed the same
  const word = want.split(' ').filter((w) => w.length > 3)[3]!;
  const cut = want.slice(0, want.indexOf(word));
  const s = await api.completions.create({ model: 'x', prompt: 'Once upon a time', max_tokens: 60, temperature: 0, stop: ['@@never', word] });
  assert.equal(s.choices[0]!.text, cut);
  assert.equal(s.choices[0]!.finish_reason, 'stop');
  let streamed = '';
  for await (const c of await api.completions.create({ model: 'x', prompt: 'Once upon a time', max_tokens: 60, temperature: 0, stop: word, stream: true })) streamed += c.choices[0]?.text ?? '';
  assert.equal(streamed, cut);
  const echo = await api.completions.create({ model: 'x', prompt: 'Once upon a time', max_tokens: 10, temperature: 0, echo: true });
  assert.ok(echo.choices[0]!.text.startsWith('Once upon a time' + want.slice(0, 5)), echo.choices[0]!.text);
  // default max_tokens is 16, as OpenAI's
  const d = await api.completions.create({ model: 'x', prompt: 'Once upon a time', temperature: 0 });
  assert.equal(d.usage!.completion_tokens, 16);
  // token ids are used as given (BOS + "Once upon a time" encoded = the prompt above)
  const prompt = loadTokenizer(undefined, 'stories260K', 512).encode('Once upon a time', { bos: true });
  const ids = (await raw(`${stories.url}/completions`, { method: 'POST', body: JSON.stringify({ prompt, max_tokens: 60, temperature: 0 }) })).json();
  assert.equal(ids.choices[0].text, want);
});

test('serve: sampling with a seed is reproducible and differs between seeds', async () => {
  const api = client(stories);
  const ask = async (seed: number) => (await api.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'Tell me a story' }], max_tokens: 40, temperature: 1, top_p: 0.95, seed })).choices[0]!.message.content;
  const a = await ask(7);
  assert.equal(await ask(7), a);
  assert.notEqual(await ask(8), a);
  // the CLI with the same seed and sampling settings gives the same text
  const r = runCli('generate', '--model', 'stories260K', '--chat', '--prompt', 'Tell me a story', '--max-new-tokens', '40', '--temperature', '1', '--top-p', '0.95', '--seed', '7');
  assert.equal(r.stdout.slice(0, -1), a);
});

test('serve: MISO over the API ("mixtune": {inputs}) equals `mixtune generate --input ... --chat`', async () => {
  const api = client(stories);
  const inputs = ['Write a story about a cat. Use the word "red".', 'Write a story about a cat.', 'Use the word "red".'];
  for (const [weighting, positions] of [['uniform', 'para'], ['fid', 'succ'], ['vanilla', 'para']] as const) {
    const want = cliGenerate('--model', 'stories260K', '--chat', ...inputs.flatMap((x) => ['--input', x]), '--weighting', weighting, '--positions', positions, '--max-new-tokens', '50');
    const body = {
      model: 'x', messages: [], max_tokens: 50, temperature: 0,
      mixtune: { inputs: inputs.map((x) => [{ role: 'user', content: x }]), weighting, positions },
    };
    const r = await api.chat.completions.create(body as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming);
    assert.equal(r.choices[0]!.message.content, want, `${weighting}/${positions}`);
    let streamed = '';
    const stream = await api.chat.completions.create({ ...body, stream: true } as unknown as OpenAI.ChatCompletionCreateParamsStreaming);
    for await (const c of stream) streamed += c.choices[0]?.delta.content ?? '';
    assert.equal(streamed, want);
  }
  // with one input it is ordinary chat generation
  const one = await api.chat.completions.create({ model: 'x', messages: [], max_tokens: 30, temperature: 0, mixtune: { inputs: [[{ role: 'user', content: 'Tell me a story' }]] } } as never) as OpenAI.ChatCompletion;
  assert.equal(one.choices[0]!.message.content, cliGenerate('--model', 'stories260K', '--chat', '--prompt', 'Tell me a story', '--max-new-tokens', '30'));
  // plain completions take MISO inputs too: the prompt starts the output
  const want = cliGenerate('--model', 'stories260K', '--input', 'The cat', '--input', 'The red ball', '--prompt', 'Once', '--max-new-tokens', '30');
  const c = await api.completions.create({ model: 'x', prompt: 'Once', max_tokens: 30, temperature: 0, mixtune: { inputs: ['The cat', 'The red ball'] } } as never) as OpenAI.Completion;
  assert.equal(c.choices[0]!.text, want);
});

test('serve: bad requests get OpenAI-style 400/404/405/413 errors and the server keeps serving', async () => {
  const api = client(stories);
  const post = (path: string, body: string, headers: Record<string, string> = { 'Content-Type': 'application/json' }) => raw(`${stories.url}${path}`, { method: 'POST', body, headers });
  const expectError = (r: Awaited<ReturnType<typeof raw>>, status: number, param?: string | null, code?: string) => {
    assert.equal(r.status, status, r.text);
    const e = r.json().error;
    assert.equal(typeof e.message, 'string');
    assert.ok(e.message.length > 5);
    assert.equal(typeof e.type, 'string');
    assert.ok('param' in e && 'code' in e);
    if (param !== undefined) assert.equal(e.param, param);
    if (code !== undefined) assert.equal(e.code, code);
  };
  const msg = [{ role: 'user', content: 'Hi' }];
  expectError(await post('/chat/completions', '{"messages": [{"role": "user", '), 400);
  expectError(await post('/chat/completions', ''), 400);
  expectError(await post('/chat/completions', '[1, 2]'), 400);
  expectError(await post('/chat/completions', '{}'), 400, 'messages', 'missing_required_parameter');
  expectError(await post('/chat/completions', JSON.stringify({ messages: 'Hi' })), 400, 'messages');
  expectError(await post('/chat/completions', JSON.stringify({ messages: [{ role: 'wizard', content: 'x' }] })), 400, 'messages[0].role');
  expectError(await post('/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] })), 400);
  expectError(await post('/chat/completions', JSON.stringify({ messages: msg, max_tokens: -5 })), 400, 'max_tokens');
  expectError(await post('/chat/completions', JSON.stringify({ messages: msg, max_tokens: 0 })), 400, 'max_tokens');
  expectError(await post('/chat/completions', JSON.stringify({ messages: msg, max_tokens: 2.5 })), 400, 'max_tokens');
  expectError(await post('/chat/completions', JSON.stringify({ messages: msg, max_tokens: 1e30 })), 400, 'max_tokens');
  expectError(await post('/chat/completions', JSON.stringify({ messages: msg, max_tokens: 100000 })), 400, 'max_tokens', 'context_length_exceeded');
  expectError(await post('/chat/completions', JSON.stringify({ messages: msg, max_completion_tokens: 100000 })), 400, 'max_completion_tokens', 'context_length_exceeded');
  expectError(await post('/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'a story '.repeat(400) }] })), 400, 'messages', 'context_length_exceeded');
  expectError(await post('/completions', JSON.stringify({ prompt: 'a story '.repeat(400) })), 400, 'prompt', 'context_length_exceeded');
  expectError(await post('/completions', JSON.stringify({ prompt: [1, 99999] })), 400, 'prompt');
  expectError(await post('/chat/completions', JSON.stringify({ messages: msg, temperature: 'hot' })), 400, 'temperature');
  expectError(await post('/chat/completions', JSON.stringify({ messages: msg, temperature: 5 })), 400, 'temperature');
  expectError(await post('/chat/completions', JSON.stringify({ messages: msg, top_p: 0 })), 400, 'top_p');
  expectError(await post('/chat/completions', JSON.stringify({ messages: msg, n: 2 })), 400, 'n');
  expectError(await post('/chat/completions', JSON.stringify({ messages: msg, stop: ['a', 'b', 'c', 'd', 'e'] })), 400, 'stop');
  expectError(await post('/chat/completions', JSON.stringify({ messages: msg, presence_penalty: 1 })), 400, 'presence_penalty');
  expectError(await post('/chat/completions', JSON.stringify({ messages: msg, logprobs: true })), 400, 'logprobs');
  expectError(await post('/chat/completions', JSON.stringify({ messages: msg, mixtune: { inputs: [[{ role: 'user', content: 'x' }]] } })), 400, 'messages');
  expectError(await post('/chat/completions', JSON.stringify({ messages: [], mixtune: { inputs: [] } })), 400, 'mixtune.inputs');
  expectError(await post('/chat/completions', JSON.stringify({ messages: [], mixtune: { inputs: [[{ role: 'user', content: 'x' }]], weighting: 'max' } })), 400, 'mixtune.weighting');
  expectError(await post('/chat/completions', JSON.stringify({ messages: [], mixtune: { inputs: Array.from({ length: 9 }, () => [{ role: 'user', content: 'x' }]) } })), 400, 'mixtune.inputs');
  expectError(await post('/completions', JSON.stringify({ prompt: '', mixtune: { inputs: ['a', 'b'] } })), 400, 'prompt');
  expectError(await post('/completions', 'x'.repeat(9 * 1024 * 1024)), 413);
  expectError(await raw(`${stories.url}/nowhere`), 404, null);
  expectError(await raw(`${stories.url.replace(/\/v1$/, '')}/`), 404);
  expectError(await raw(`${stories.url}/chat/completions`), 405);
  expectError(await raw(`${stories.url}/models/gpt-4`), 404, 'model', 'model_not_found');
  // the client library sees the same errors as typed exceptions
  await assert.rejects(api.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'x' }], max_tokens: -1 }), (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'max_tokens');
  // and the server still answers
  const ok = await api.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 5, temperature: 0 });
  assert.equal(ok.usage!.completion_tokens, 5);
  const models = await api.models.list();
  assert.deepEqual(models.data.map((m) => m.id), ['stories260K']);
  assert.equal((await api.models.retrieve('stories260K')).id, 'stories260K');
  const health = (await raw(stories.url.replace(/\/v1$/, '/health'))).json();
  assert.equal(health.status, 'ok');
});

test('serve: --api-key: 401 without the key or with a wrong one; /health stays open', async () => {
  const s = await startServer(['--model', 'stories260K', '--quiet', '--api-key', 'sekret-123']);
  try {
    await assert.rejects(client(s, 'wrong').chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3 }), (e: unknown) => e instanceof OpenAI.AuthenticationError && e.status === 401 && e.code === 'invalid_api_key');
    const none = await raw(`${s.url}/models`);
    assert.equal(none.status, 401);
    assert.equal(none.json().error.code, 'invalid_api_key');
    assert.equal((await raw(s.url.replace(/\/v1$/, '/health'))).status, 200);
    const ok = await client(s, 'sekret-123').chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3, temperature: 0 });
    assert.equal(ok.usage!.completion_tokens, 3);
  } finally {
    assert.equal(await s.stop(), 0);
  }
});

test('serve: 32 concurrent clients x 3 requests are all answered correctly, in order of arrival', async () => {
  const api = client(stories);
  const prompts = Array.from({ length: 8 }, (_, i) => `Tell me story number ${i} about a ${['cat', 'dog', 'bird', 'fish'][i % 4]}`);
  const expected = new Map<string, string>();
  for (const p of prompts) {
    for (const seed of [0, 1]) {
      const r = await api.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: p }], max_tokens: 24, temperature: seed === 0 ? 0 : 0.9, seed });
      expected.set(`${p}|${seed}`, r.choices[0]!.message.content!);
    }
  }
  let answered = 0;
  await Promise.all(Array.from({ length: 32 }, async (_, c) => {
    for (let k = 0; k < 3; k++) {
      const p = prompts[(c + k) % prompts.length]!;
      const seed = (c + k) % 2;
      const params = { model: 'x', messages: [{ role: 'user' as const, content: p }], max_tokens: 24, temperature: seed === 0 ? 0 : 0.9, seed };
      let text: string;
      if ((c + k) % 3 === 0) {
        text = '';
        for await (const ch of await api.chat.completions.create({ ...params, stream: true })) text += ch.choices[0]?.delta.content ?? '';
      } else {
        text = (await api.chat.completions.create(params)).choices[0]!.message.content!;
      }
      assert.equal(text, expected.get(`${p}|${seed}`), `client ${c} request ${k}`);
      answered++;
    }
  }));
  assert.equal(answered, 96);
});

test('serve: RSS does not grow across 500 requests', async () => {
  const api = client(stories);
  const one = async (i: number) => {
    if (i % 2 === 0) {
      await api.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: `Story ${i}` }], max_tokens: 8, temperature: 0.8, seed: i });
    } else {
      for await (const _ of await api.completions.create({ model: 'x', prompt: `Once ${i}`, max_tokens: 8, stream: true })) { /* drain */ }
    }
  };
  for (let i = 0; i < 100; i++) await one(i); // warm up (JIT, allocator pools)
  const before = vmRssKb(stories.proc.pid!);
  for (let i = 0; i < 500; i++) await one(i);
  const after = vmRssKb(stories.proc.pid!);
  assert.ok(after - before < 24 * 1024, `RSS grew from ${before} kB to ${after} kB over 500 requests`);
});

test('serve: StopStrings holds back a possible stop sequence and cuts at the earliest one', () => {
  const s = new StopStrings(['</end>', 'XY']);
  assert.deepEqual(s.push('hello </e'), { emit: 'hello ', stopped: false });
  assert.deepEqual(s.push('nd'), { emit: '', stopped: false });
  assert.deepEqual(s.push('!'), { emit: '</end!', stopped: false });
  assert.deepEqual(s.push(' aX'), { emit: ' a', stopped: false });
  assert.deepEqual(s.push('Y more'), { emit: '', stopped: true });
  const t = new StopStrings(['ab']);
  assert.deepEqual(t.push('xa'), { emit: 'x', stopped: false });
  assert.equal(t.flush(), 'a');
  assert.deepEqual(new StopStrings([]).push('abc'), { emit: 'abc', stopped: false });
});

test('serve: RequestQueue runs one task at a time in order, bounds the waiting, drops cancelled waiters', async () => {
  const q = new RequestQueue(2);
  const order: number[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const never = new AbortController().signal;
  const first = q.run(async () => { await gate; order.push(1); }, never);
  const second = q.run(async () => { order.push(2); }, never);
  const ac = new AbortController();
  const third = q.run(async () => { order.push(3); }, ac.signal);
  await assert.rejects(q.run(async () => {}, never), QueueFullError);
  assert.equal(q.waitingCount, 2);
  ac.abort();
  await assert.rejects(third, CancelledError);
  assert.equal(q.waitingCount, 1);
  const fourth = q.run(async () => { order.push(4); }, never);
  release();
  await Promise.all([first, second, fourth]);
  assert.deepEqual(order, [1, 2, 4]);
  await q.idle();
  assert.equal(q.running + q.waitingCount, 0);
});

// A slower model (~100 MB of random weights, context 4096, the 512-token llama2.c vocabulary) so a
// long generation is still running when the test acts.
describe('serve with a slow model', () => {
  let dir: string;
  let slow: Server;
  const config: LlamaConfig = {
    vocabSize: 512, dim: 512, hiddenDim: 1536, nLayers: 8, nHeads: 8, nKvHeads: 8, headDim: 64, maxSeqLen: 4096,
    normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: false, qkvBias: false,
  };
  const long = { model: 'x', messages: [{ role: 'user' as const, content: 'Go on forever' }], max_tokens: 3500, temperature: 0, ignore_eos: true };
  const health = async (s: Server) => (await raw(s.url.replace(/\/v1$/, '/health'))).json();
  const waitFor = async (what: string, cond: () => Promise<boolean>, ms = 20_000) => {
    const t0 = Date.now();
    while (!(await cond())) {
      if (Date.now() - t0 > ms) assert.fail(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mixtune-serve-'));
    saveHfModel(join(dir, 'slow'), { config, weights: randomWeights(config, 5) });
    slow = await startServer(['--model', join(dir, 'slow'), '--tokenizer', storiesTok, '--max-queue', '1']);
  });
  after(async () => {
    await slow?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('serve: a full queue answers 429; a cancelled stream frees its slot; a disconnected client stops its generation', async () => {
    const api = client(slow);
    // A: a long stream, running
    const a = await api.chat.completions.create({ ...long, stream: true });
    const it = a[Symbol.asyncIterator]();
    await it.next();
    await waitFor('A to run', async () => (await health(slow)).queue.running === 1);
    // B waits (the queue holds one); C finds the queue full
    const b = api.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 5, temperature: 0 });
    await waitFor('B to wait', async () => (await health(slow)).queue.waiting === 1);
    const t0 = Date.now();
    await assert.rejects(api.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 5 }), (e: unknown) => e instanceof OpenAI.RateLimitError && e.status === 429);
    // cancelling A's stream lets B run at once, long before A would have ended
    a.controller.abort();
    const rb = await b;
    assert.equal(rb.usage!.completion_tokens, 5);
    assert.ok(Date.now() - t0 < 10_000, 'B waited for the cancelled stream');
    await waitFor('an idle queue', async () => {
      const h = await health(slow);
      return h.queue.running === 0 && h.queue.waiting === 0;
    });
    assert.match(slow.log(), /POST \/v1\/chat\/completions cancelled/);
    // a non-streaming request whose client disconnects is cancelled too
    const ac = new AbortController();
    const gone = fetch(`${slow.url}/chat/completions`, { method: 'POST', body: JSON.stringify(long), signal: ac.signal }).catch(() => 'aborted');
    await waitFor('the request to run', async () => (await health(slow)).queue.running === 1);
    ac.abort();
    assert.equal(await gone, 'aborted');
    await waitFor('the cancelled request to stop', async () => (await health(slow)).queue.running === 0, 5000);
  });

  test('serve: SIGTERM finishes the running and queued requests, then exits 0', async () => {
    const api = client(slow);
    const running = api.chat.completions.create({ ...long, max_tokens: 150 });
    await waitFor('the request to run', async () => (await health(slow)).queue.running === 1);
    const queued = api.completions.create({ model: 'x', prompt: 'Once', max_tokens: 20, temperature: 0, ignore_eos: true } as never) as Promise<OpenAI.Completion>;
    await waitFor('the second to wait', async () => (await health(slow)).queue.waiting === 1);
    const exit = slow.stop();
    const [r1, r2] = await Promise.all([running, queued]);
    assert.equal(r1.usage!.completion_tokens, 150);
    assert.equal(r1.choices[0]!.finish_reason, 'length');
    assert.equal(r2.usage!.completion_tokens, 20);
    assert.equal(await exit, 0);
    assert.match(slow.log(), /SIGTERM: finishing accepted requests/);
    await assert.rejects(fetch(`${slow.url}/models`));
  });
});

test('serve: an HF model with a real chat template (Qwen2 shape, Qwen2.5 tokenizer): chat and MISO answers equal the CLI', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-serve-qwen-'));
  const config: LlamaConfig = {
    vocabSize: 151936, dim: 32, hiddenDim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, headDim: 8, maxSeqLen: 1024,
    normEps: 1e-6, ropeTheta: 1000000, tiedEmbeddings: true, qkvBias: true,
  };
  const fx = join(sharedDir(), 'fixtures', 'qwen2.5');
  const files = Object.fromEntries(['vocab.json', 'merges.txt', 'tokenizer_config.json'].map((n) => [n, readFileSync(join(fx, n))]));
  const model = join(dir, 'qwen');
  saveHfModel(model, { config, weights: randomWeights(config, 11) }, { arch: 'qwen2', tokenizerFiles: files });
  const s = await startServer(['--model', model, '--quiet']);
  try {
    const api = client(s);
    assert.deepEqual((await api.models.list()).data.map((m) => m.id), ['qwen']);
    const want = cliGenerate('--model', model, '--chat', '--system', 'Be brief.', '--prompt', 'Name three colours.', '--max-new-tokens', '25');
    const r = await api.chat.completions.create({ model: 'qwen', messages: [{ role: 'developer', content: 'Be brief.' }, { role: 'user', content: 'Name three colours.' }], max_tokens: 25, temperature: 0 });
    assert.equal(r.choices[0]!.message.content, want);
    const inputs = ['Name three colours. Answer in French.', 'Name three colours.'];
    const wantMiso = cliGenerate('--model', model, '--chat', ...inputs.flatMap((x) => ['--input', x]), '--max-new-tokens', '25');
    const m = await api.chat.completions.create({ model: 'qwen', messages: [], max_tokens: 25, temperature: 0, mixtune: { inputs: inputs.map((x) => [{ role: 'user', content: x }]) } } as never) as OpenAI.ChatCompletion;
    assert.equal(m.choices[0]!.message.content, wantMiso);
  } finally {
    assert.equal(await s.stop(), 0);
    rmSync(dir, { recursive: true, force: true });
  }
});
