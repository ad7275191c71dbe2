// `mixtune serve`: an OpenAI-compatible HTTP API on Node's own http module.
//
//   GET  /health                 status and queue (no API key needed)
//   GET  /v1/models[/<id>]       the one served model
//   POST /v1/chat/completions    messages rendered with the model's chat template; "mixtune": {inputs}
//                                decodes one answer from several inputs (MISO)
//   POST /v1/completions         a plain prompt (BOS + text, or token ids)
//
// Requests are served one at a time in arrival order (RequestQueue); streams are Server-Sent Events
// ending in "data: [DONE]". A client that disconnects cancels its generation (or leaves the queue).
// Errors are OpenAI-shaped JSON and never stop the server.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { closeHttp, createHttpServer, listenHttp } from '../util/http.js';
import type { AddressInfo } from 'node:net';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { ApiError, badRequest } from './api-error.js';
import { CancelledError, QueueFullError, RequestQueue } from './queue.js';
import { ChatRequest, CompletionRequest, parseRequest } from './requests.js';
import type { Completion, DecodeJob, ServedModel } from './engine.js';

export interface ServerOptions {
  model: ServedModel;
  /** Requests must carry "Authorization: Bearer <apiKey>" (except /health). */
  apiKey?: string;
  /** Requests that may wait behind the running one; more get 429. */
  maxQueue: number;
  /** Largest request body accepted (413 above). */
  maxBodyBytes?: number;
  /** One line per request (default: none). */
  log?: (line: string) => void;
}

type Handler = (req: IncomingMessage, res: ServerResponse, signal: AbortSignal) => Promise<void>;

const DEFAULT_MAX_BODY = 8 * 1024 * 1024;

export class MixtuneServer {
  readonly http: Server;
  private readonly queue: RequestQueue;
  private draining = false;
  private inflight = 0;
  private onIdle: (() => void) | null = null;

  constructor(private readonly o: ServerOptions) {
    this.queue = new RequestQueue(o.maxQueue);
    this.http = createHttpServer((req, res) => void this.dispatch(req, res));
  }

  listen(port: number, host: string): Promise<AddressInfo> {
    return listenHttp(this.http, port, host);
  }

  /** Stops accepting requests, finishes every accepted one (running and queued), closes. */
  async shutdown(): Promise<void> {
    this.draining = true;
    await closeHttp(this.http, async () => {
      if (this.inflight > 0) await new Promise<void>((r) => (this.onIdle = r));
    });
  }

  /** Answers one request (also for servers that embed the API, such as `mixtune ui`). */
  handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    return this.dispatch(req, res);
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const t0 = Date.now();
    this.inflight++;
    const ac = new AbortController();
    // 'close' before the response finished: the client went away; stop its work.
    res.on('close', () => {
      if (!res.writableFinished) ac.abort();
    });
    try {
      res.setHeader('Access-Control-Allow-Origin', '*');
      if (this.draining) res.setHeader('Connection', 'close');
      await this.route(req, res, ac.signal);
    } catch (e) {
      this.fail(res, e);
    } finally {
      this.o.log?.(`${req.method} ${req.url} ${ac.signal.aborted ? 'cancelled' : res.statusCode} ${Date.now() - t0} ms`);
      this.inflight--;
      if (this.inflight === 0 && this.onIdle) this.onIdle();
    }
  }

  private async route(req: IncomingMessage, res: ServerResponse, signal: AbortSignal): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname.replace(/\/+$/, '') || '/';
    if (req.method === 'OPTIONS') {
      res.writeHead(204, {
        'Access-Control-Allow-Methods': 'GET, POST, OPTIONS',
        'Access-Control-Allow-Headers': 'Authorization, Content-Type',
        'Access-Control-Max-Age': '86400',
      });
      res.end();
      return;
    }
    const routes: Record<string, Partial<Record<string, Handler>>> = {
      '/health': { GET: async (_q, s) => this.health(s) },
      '/v1/models': { GET: async (_q, s) => sendJson(s, 200, { object: 'list', data: [this.modelCard()] }) },
      '/v1/chat/completions': { POST: (q, s, sig) => this.chat(q, s, sig) },
      '/v1/completions': { POST: (q, s, sig) => this.completions(q, s, sig) },
    };
    let route = routes[path];
    if (!route && path.startsWith('/v1/models/')) {
      const id = decodeURIComponent(path.slice('/v1/models/'.length));
      route = { GET: async (_q, s) => {
        if (id !== this.o.model.id) throw new ApiError(404, `the model '${id}' does not exist; this server serves '${this.o.model.id}'`, 'invalid_request_error', 'model', 'model_not_found');
        sendJson(s, 200, this.modelCard());
      } };
    }
    if (!route) throw new ApiError(404, `unknown URL: ${req.method} ${path}`, 'invalid_request_error', null, 'unknown_url');
    if (path !== '/health') this.authorize(req);
    const handler = route[req.method ?? ''];
    if (!handler) {
      res.setHeader('Allow', Object.keys(route).join(', '));
      throw new ApiError(405, `${req.method} is not allowed on ${path} (use ${Object.keys(route).join(' or ')})`, 'invalid_request_error', null, 'method_not_allowed');
    }
    if (this.draining && req.method === 'POST') throw new ApiError(503, 'the server is shutting down', 'server_error', null, 'shutting_down');
    await handler(req, res, signal);
  }

  private authorize(req: IncomingMessage): void {
    const key = this.o.apiKey;
    if (key === undefined) return;
    const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
    const given = Buffer.from(m ? m[1]!.trim() : '');
    const want = Buffer.from(key);
    if (given.length !== want.length || !timingSafeEqual(given, want)) {
      throw new ApiError(401, m ? 'incorrect API key provided' : 'no API key provided: send "Authorization: Bearer <key>"', 'invalid_request_error', null, 'invalid_api_key');
    }
  }

  private health(res: ServerResponse): void {
    sendJson(res, 200, {
      status: this.draining ? 'shutting_down' : 'ok',
      model: this.o.model.id,
      context: this.o.model.context,
      queue: { running: this.queue.running, waiting: this.queue.waitingCount, max_waiting: this.queue.maxWaiting },
    });
  }

  private modelCard(): object {
    return { id: this.o.model.id, object: 'model', created: this.o.model.created, owned_by: 'mixtune' };
  }

  private async chat(req: IncomingMessage, res: ServerResponse, signal: AbortSignal): Promise<void> {
    const body = parseRequest(ChatRequest, await this.readJson(req));
    const job = this.o.model.chatJob(body);
    const id = `chatcmpl-${randomBytes(12).toString('hex')}`;
    const head = { id, object: 'chat.completion.chunk', created: nowSeconds(), model: this.o.model.id, system_fingerprint: null };
    if (body.stream) {
      const includeUsage = body.stream_options?.include_usage === true;
      const chunk = (delta: object, finish: string | null): object => ({
        ...head, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], ...(includeUsage ? { usage: null } : {}),
      });
      await this.stream(res, signal, job, {
        first: () => [chunk({ role: 'assistant', content: '' }, null)],
        text: (t) => chunk({ content: t }, null),
        last: (c) => [chunk({}, c.finishReason), ...(includeUsage ? [{ ...head, choices: [], usage: usageOf(c) }] : [])],
      });
      return;
    }
    const c = await this.generate(job, signal);
    sendJson(res, 200, {
      id, object: 'chat.completion', created: head.created, model: this.o.model.id, system_fingerprint: null,
      choices: [{ index: 0, message: { role: 'assistant', content: c.text, refusal: null }, logprobs: null, finish_reason: c.finishReason }],
      usage: usageOf(c),
    });
  }

  private async completions(req: IncomingMessage, res: ServerResponse, signal: AbortSignal): Promise<void> {
    const body = parseRequest(CompletionRequest, await this.readJson(req));
    const { job, promptText } = this.o.model.completionJob(body);
    const echo = body.echo ? promptText : '';
    const id = `cmpl-${randomBytes(12).toString('hex')}`;
    const head = { id, object: 'text_completion', created: nowSeconds(), model: this.o.model.id, system_fingerprint: null };
    if (body.stream) {
      const includeUsage = body.stream_options?.include_usage === true;
      const chunk = (text: string, finish: string | null): object => ({
        ...head, choices: [{ index: 0, text, logprobs: null, finish_reason: finish }], ...(includeUsage ? { usage: null } : {}),
      });
      await this.stream(res, signal, job, {
        first: () => (echo ? [chunk(echo, null)] : []),
        text: (t) => chunk(t, null),
        last: (c) => [chunk('', c.finishReason), ...(includeUsage ? [{ ...head, choices: [], usage: usageOf(c) }] : [])],
      });
      return;
    }
    const c = await this.generate(job, signal);
    sendJson(res, 200, {
      ...head, choices: [{ index: 0, text: echo + c.text, logprobs: null, finish_reason: c.finishReason }], usage: usageOf(c),
    });
  }

  /** Waits for its turn, then decodes. */
  private generate(job: DecodeJob, signal: AbortSignal, onText?: (t: string) => void, onStart?: () => void): Promise<Completion> {
    return this.queue.run(async () => {
      onStart?.();
      return this.o.model.decode(job, signal, onText);
    }, signal);
  }

  /** A Server-Sent Events response: the chunks `first`, one per text piece, then `last`, then [DONE]. */
  private async stream(
    res: ServerResponse, signal: AbortSignal, job: DecodeJob,
    chunks: { first: () => object[]; text: (t: string) => object; last: (c: Completion) => object[] },
  ): Promise<void> {
    const send = (o: object | string): void => {
      if (!res.writableEnded && !res.destroyed) res.write(`data: ${typeof o === 'string' ? o : JSON.stringify(o)}\n\n`);
    };
    let started = false;
    try {
      const c = await this.generate(job, signal, (t) => send(chunks.text(t)), () => {
        started = true;
        res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', ...(this.draining ? {} : { Connection: 'keep-alive' }) });
        for (const o of chunks.first()) send(o);
      });
      for (const o of chunks.last(c)) send(o);
    } catch (e) {
      if (!started) throw e; // nothing sent yet: an ordinary error response
      if (!(e instanceof CancelledError)) send(errorOf(e).body());
    }
    send('[DONE]');
    res.end();
  }

  private readJson(req: IncomingMessage): Promise<unknown> {
    const limit = this.o.maxBodyBytes ?? DEFAULT_MAX_BODY;
    return new Promise((resolve, reject) => {
      const parts: Buffer[] = [];
      let size = 0;
      let failed = false;
      req.on('data', (b: Buffer) => {
        if (failed) return;
        size += b.length;
        if (size > limit) {
          failed = true;
          reject(new ApiError(413, `the request body is larger than ${limit} bytes`, 'invalid_request_error', null, 'request_too_large'));
          return;
        }
        parts.push(b);
      });
      req.on('error', (e) => reject(e));
      req.on('end', () => {
        if (failed) return;
        const text = Buffer.concat(parts).toString('utf8');
        if (text.trim() === '') return reject(badRequest('the request body is empty; send a JSON object'));
        try {
          resolve(JSON.parse(text));
        } catch (e) {
          reject(badRequest(`the request body is not valid JSON (${(e as Error).message})`));
        }
      });
    });
  }

  private fail(res: ServerResponse, e: unknown): void {
    if (e instanceof CancelledError) {
      if (!res.destroyed) res.destroy();
      return;
    }
    const err = errorOf(e);
    if (err.status === 500) this.o.log?.(`error: ${(e as Error)?.stack ?? String(e)}`);
    if (res.headersSent) {
      res.end();
      return;
    }
    if (err.status === 429) res.setHeader('Retry-After', '1');
    // the body may not have been read (413): close rather than read the rest
    if (err.status === 413) res.setHeader('Connection', 'close');
    sendJson(res, err.status, err.body());
  }
}

function errorOf(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof QueueFullError) return new ApiError(429, e.message, 'rate_limit_error', null, 'queue_full');
  return new ApiError(500, `generation failed: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`, 'server_error');
}

function usageOf(c: Completion): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
  return { prompt_tokens: c.promptTokens, completion_tokens: c.completionTokens, total_tokens: c.promptTokens + c.completionTokens };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

const nowSeconds = (): number => Math.floor(Date.now() / 1000);
