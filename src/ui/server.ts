// `mixtune ui`: one page (ui/ in the package, no CDN) and a small JSON API on Node's http module.
//
//   GET  /                         the page; /assets/<file> its scripts and styles
//   GET  /api/info                 run folders, configs, row variants, chat models
//   GET  /api/runs                 every run and results folder found (status, steps, losses, config)
//   GET  /api/metrics?run=ID       a run's metrics.jsonl (malformed lines counted and skipped)
//   GET  /api/results?id=ID        a demo / study results table
//   GET  /api/rows?config=I&variant=V            prepared rows of a --config (stats, row list)
//   GET  /api/row?config=I&variant=V&split=S&row=N   one row: tokens, parts, positions, loss, attention
//   GET  /api/events               Server-Sent Events: "change" whenever a run or results file changes
//   GET  /files/<root>/<path>      a file inside a run folder (nothing outside: 404)
//   POST /api/chat/model           {"id"}: load --model or a run's final/ for the Chat view
//   *    /v1/...                   the `mixtune serve` API with the loaded model
//
// Errors are OpenAI-shaped JSON. Bound to loopback, requests must name a loopback Host (a page on
// another site cannot reach the API through DNS rebinding).
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { closeHttp, createHttpServer, listenHttp } from '../util/http.js';
import type { AddressInfo } from 'node:net';
import { createReadStream, readdirSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { ApiError, badRequest } from '../serve/api-error.js';
import { MixtuneError } from '../util/errors.js';
import { packageRoot } from '../util/paths.js';
import { resolveInside, type Root } from './files.js';
import { findRuns, parseRunId, readMetrics, readRun, type Found, type RunInfo } from './runs.js';
import { readResults } from './results.js';
import { ROW_VARIANTS, RowsCache, rowDetail } from './rows.js';
import { ChatHost, type ChatModelChoice } from './chat.js';

export interface UiServerOptions {
  roots: Root[];
  /** train.yaml files for the Rows view. */
  configs: string[];
  /** --model (and --tokenizer) for the Chat view. */
  model?: { path: string; tokenizer?: string };
  maxInputs?: number;
  /** Milliseconds between checks for changed runs while a page listens (default 1000). */
  pollMs?: number;
  log?: (line: string) => void;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml', '.png': 'image/png', '.json': 'application/json; charset=utf-8',
  '.jsonl': 'text/plain; charset=utf-8', '.md': 'text/plain; charset=utf-8', '.txt': 'text/plain; charset=utf-8',
  '.yaml': 'text/plain; charset=utf-8', '.yml': 'text/plain; charset=utf-8', '.log': 'text/plain; charset=utf-8',
};

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

/** The folder of the page's static files (shipped in the package). */
export function assetsDir(): string {
  return join(packageRoot(), 'ui');
}

export class UiServer {
  readonly http: Server;
  private readonly assets: Set<string>;
  private readonly rows: RowsCache;
  private readonly chat: ChatHost;
  private readonly listeners = new Set<ServerResponse>();
  private timer: NodeJS.Timeout | null = null;
  private signature = '';
  private loopbackOnly = true;
  private found: Found | null = null;
  private foundAt = 0;

  constructor(private readonly o: UiServerOptions) {
    this.assets = new Set(readdirSync(assetsDir()).filter((f) => statSync(join(assetsDir(), f)).isFile()));
    this.rows = new RowsCache(o.configs);
    this.chat = new ChatHost({ maxInputs: o.maxInputs ?? 8, maxQueue: 8, ...(o.log ? { log: o.log } : {}) });
    this.http = createHttpServer((req, res) => void this.dispatch(req, res));
  }

  listen(port: number, host: string): Promise<AddressInfo> {
    this.loopbackOnly = LOOPBACK_HOSTS.has(host);
    return listenHttp(this.http, port, host);
  }

  /** Ends the event streams and closes the server. */
  async shutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const r of this.listeners) r.end();
    this.listeners.clear();
    await closeHttp(this.http);
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const t0 = Date.now();
    try {
      res.setHeader('X-Content-Type-Options', 'nosniff');
      if (this.loopbackOnly) {
        const host = (req.headers.host ?? '').replace(/:\d+$/, '').toLowerCase();
        if (!LOOPBACK_HOSTS.has(host)) throw new ApiError(403, `requests must be addressed to localhost / 127.0.0.1 (Host: ${req.headers.host ?? 'none'})`, 'invalid_request_error', null, 'forbidden_host');
      }
      await this.route(req, res);
    } catch (e) {
      fail(res, e, this.o.log);
    } finally {
      if (!req.url?.startsWith('/api/events')) this.o.log?.(`${req.method} ${req.url} ${res.statusCode} ${Date.now() - t0} ms`);
    }
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    // the raw path: /files/ resolves its own (still encoded) segments
    const rawPath = (req.url ?? '/').split('?')[0]!;
    const path = url.pathname;
    const method = req.method ?? 'GET';
    if (path.startsWith('/v1/') || path === '/v1') return this.chat.handle(req, res);
    if (path === '/api/chat/model') {
      if (method !== 'POST') throw methodNotAllowed(method, path, 'POST');
      return this.selectModel(req, res);
    }
    if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed(method, path, 'GET');
    const q = (k: string): string => {
      const v = url.searchParams.get(k);
      if (v === null || v === '') throw badRequest(`${k}: required query parameter`, k, 'missing_required_parameter');
      return v;
    };
    switch (path) {
      case '/':
      case '/index.html':
        return sendFile(res, join(assetsDir(), 'index.html'), { cache: false });
      case '/api/info':
        return sendJson(res, 200, this.info());
      case '/api/runs': {
        const f = this.scan(true);
        return sendJson(res, 200, { runs: this.runInfos(f), results: f.results });
      }
      case '/api/metrics': {
        const run = this.runOf(q('run'));
        return sendJson(res, 200, readMetrics(this.dirOf(run.root, run.path)));
      }
      case '/api/results': {
        const id = q('id');
        const r = this.scan(false).results.find((x) => x.id === id);
        if (!r) throw notFound(`no results folder '${id}' under the run folders`);
        const t = readResults(this.dirOf(r.root, r.path), r.kind);
        if (!t) throw notFound(`${r.name}/results.json cannot be read`);
        return sendJson(res, 200, { ...r, table: t });
      }
      case '/api/rows': {
        const { entry } = this.prepared(q);
        return sendJson(res, 200, entry.view);
      }
      case '/api/row': {
        const { entry } = this.prepared(q);
        const split = q('split');
        if (split !== 'train' && split !== 'eval') throw badRequest(`split: 'train' or 'eval', not '${split}'`, 'split');
        const rows = split === 'train' ? entry.train : entry.eval;
        const n = Number(q('row'));
        if (!Number.isInteger(n) || n < 0 || n >= rows.length) throw badRequest(`row: an index in [0, ${rows.length}), not '${url.searchParams.get('row')}'`, 'row');
        return sendJson(res, 200, rowDetail(rows[n]!, n, entry.tok));
      }
      case '/api/events':
        return this.events(req, res);
    }
    if (path.startsWith('/assets/')) {
      const name = decodeSafe(path.slice('/assets/'.length));
      if (name === null || !this.assets.has(name)) throw notFound(`unknown URL: GET ${path}`);
      return sendFile(res, join(assetsDir(), name), { cache: false });
    }
    if (rawPath.startsWith('/files/')) {
      const m = /^\/files\/(\d+)\/(.*)$/.exec(rawPath);
      const root = m ? this.o.roots[Number(m[1])] : undefined;
      const file = root ? resolveInside(root, m![2]!) : null;
      if (!file) throw notFound('no such file in the run folders');
      return sendFile(res, file, { cache: false, sandbox: true });
    }
    throw notFound(`unknown URL: ${method} ${path}`);
  }

  private info(): object {
    return {
      roots: this.o.roots.map((r) => r.given),
      configs: this.o.configs,
      variants: Object.entries(ROW_VARIANTS).map(([id, v]) => ({ id, label: v.label })),
      chat: { loaded: this.chat.loaded, models: this.modelChoices().map(({ id, label }) => ({ id, label })) },
    };
  }

  private modelChoices(): ChatModelChoice[] {
    const out: ChatModelChoice[] = [];
    if (this.o.model) out.push({ id: 'model', label: this.o.model.path, path: this.o.model.path, ...(this.o.model.tokenizer ? { tokenizer: this.o.model.tokenizer } : {}) });
    for (const r of this.runInfos(this.scan(false))) {
      if (r.hasModel) out.push({ id: r.id, label: `${r.name}/final`, path: join(this.dirOf(r.root, r.path), 'final') });
    }
    return out;
  }

  private async selectModel(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readJson(req);
    const id = typeof body === 'object' && body !== null ? (body as { id?: unknown }).id : undefined;
    if (typeof id !== 'string') throw badRequest('id: required, a model id from /api/info', 'id', 'missing_required_parameter');
    const choice = this.modelChoices().find((c) => c.id === id);
    if (!choice) throw notFound(`no model '${id}': use --model or a run with a final/ folder`);
    this.chat.select(choice);
    sendJson(res, 200, { loaded: this.chat.loaded });
  }

  /** The prepared rows of ?config=&variant= (a config or data error is the request's: 400 with the message). */
  private prepared(q: (k: string) => string): { entry: ReturnType<RowsCache['get']> } {
    const c = Number(q('config'));
    if (!Number.isInteger(c) || c < 0 || c >= this.o.configs.length) {
      throw badRequest(this.o.configs.length ? `config: an index in [0, ${this.o.configs.length})` : 'no --config was given to mixtune ui', 'config');
    }
    const v = q('variant');
    if (!(v in ROW_VARIANTS)) throw badRequest(`variant: one of ${Object.keys(ROW_VARIANTS).join(', ')}`, 'variant');
    try {
      return { entry: this.rows.get(c, v) };
    } catch (e) {
      if (e instanceof MixtuneError) throw new ApiError(400, e.message.split('\n')[0]!, 'invalid_request_error', 'config', 'prepare_failed');
      throw e;
    }
  }

  /** The runs and results under the roots (walked again when older than 2 s, or when `fresh`). */
  private scan(fresh: boolean): Found {
    if (!this.found || fresh || Date.now() - this.foundAt > 2000) {
      this.found = findRuns(this.o.roots);
      this.foundAt = Date.now();
    }
    return this.found;
  }

  private runInfos(f: Found): RunInfo[] {
    const now = Date.now();
    return f.runs.map((r) => readRun(this.o.roots[r.root]!, r.root, r.path, now));
  }

  private runOf(id: string): { root: number; path: string } {
    const p = parseRunId(id, this.o.roots);
    if (!p || !this.scan(false).runs.some((r) => r.root === p.root && r.path === p.path) && !this.scan(true).runs.some((r) => r.root === p.root && r.path === p.path)) {
      throw notFound(`no run '${id}' under the run folders`);
    }
    return p;
  }

  private dirOf(root: number, path: string): string {
    return path === '' ? this.o.roots[root]!.real : join(this.o.roots[root]!.real, ...path.split('/'));
  }

  // ---- live updates ------------------------------------------------------------------------------

  private events(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', Connection: 'keep-alive' });
    res.write('retry: 2000\n\n');
    this.listeners.add(res);
    req.on('close', () => {
      this.listeners.delete(res);
      if (this.listeners.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = null;
      }
    });
    if (!this.timer) {
      const sig = this.currentSignature();
      this.signature = sig.joined;
      this.lastParts = sig.parts;
      this.timer = setInterval(() => this.poll(), this.o.pollMs ?? 1000);
    }
  }

  /** One string per run / results folder that changes whenever their files do. */
  private currentSignature(): { joined: string; parts: Map<string, string> } {
    const f = this.scan(true);
    const parts = new Map<string, string>();
    const st = (p: string): string => {
      try {
        const s = statSync(p);
        return `${s.size}:${s.mtimeMs}`;
      } catch {
        return '-';
      }
    };
    for (const r of f.runs) {
      const d = this.dirOf(r.root, r.path);
      parts.set(`${r.root}/${r.path}`, ['metrics.jsonl', 'summary.json', 'run.json', '.mixtune.lock', 'result.json', 'responses.jsonl'].map((n) => st(join(d, n))).join('|'));
    }
    for (const r of f.results) parts.set(`results:${r.id}`, st(join(this.dirOf(r.root, r.path), 'results.json')));
    return { joined: [...parts].map(([k, v]) => `${k}=${v}`).join('\n'), parts };
  }

  private lastParts = new Map<string, string>();

  private poll(): void {
    let sig;
    try {
      sig = this.currentSignature();
    } catch (e) {
      this.o.log?.(`watch: ${(e as Error).message}`);
      return;
    }
    if (sig.joined === this.signature) return;
    const changed = [...sig.parts].filter(([k, v]) => this.lastParts.get(k) !== v).map(([k]) => k);
    const removed = [...this.lastParts.keys()].filter((k) => !sig.parts.has(k));
    this.signature = sig.joined;
    this.lastParts = sig.parts;
    const msg = `event: change\ndata: ${JSON.stringify({ changed: [...changed, ...removed] })}\n\n`;
    for (const r of this.listeners) r.write(msg);
  }
}

function decodeSafe(s: string): string | null {
  try {
    return decodeURIComponent(s);
  } catch {
    return null;
  }
}

const notFound = (message: string): ApiError => new ApiError(404, message, 'invalid_request_error', null, 'not_found');
const methodNotAllowed = (method: string, path: string, allowed: string): ApiError =>
  new ApiError(405, `${method} is not allowed on ${path} (use ${allowed})`, 'invalid_request_error', null, 'method_not_allowed');

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
  res.end(text);
}

function sendFile(res: ServerResponse, path: string, o: { cache: boolean; sandbox?: boolean }): Promise<void> {
  return new Promise((resolve, reject) => {
    const size = statSync(path).size;
    const headers: Record<string, string | number> = {
      'Content-Type': TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream', 'Content-Length': size,
      'Cache-Control': o.cache ? 'max-age=3600' : 'no-cache',
    };
    // a run's files are data: an SVG or HTML among them runs no script in the page's origin
    if (o.sandbox) headers['Content-Security-Policy'] = 'sandbox; default-src \'none\'; style-src \'unsafe-inline\'; img-src data:';
    const s = createReadStream(path);
    s.once('error', reject);
    s.once('open', () => {
      res.writeHead(200, headers);
      s.pipe(res);
    });
    res.once('finish', () => resolve());
    res.once('close', () => resolve());
  });
}

function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (b: Buffer) => {
      size += b.length;
      if (size <= 1 << 20) parts.push(b);
    });
    req.on('error', reject);
    req.on('end', () => {
      if (size > 1 << 20) return reject(new ApiError(413, 'the request body is larger than 1 MiB', 'invalid_request_error', null, 'request_too_large'));
      try {
        resolve(JSON.parse(Buffer.concat(parts).toString('utf8')));
      } catch (e) {
        reject(badRequest(`the request body is not valid JSON (${(e as Error).message})`));
      }
    });
  });
}

function fail(res: ServerResponse, e: unknown, log?: (line: string) => void): void {
  const err = e instanceof ApiError ? e : new ApiError(500, `internal error: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`, 'server_error');
  if (err.status === 500) log?.(`error: ${(e as Error)?.stack ?? String(e)}`);
  if (res.headersSent) {
    res.end();
    return;
  }
  sendJson(res, err.status, err.body());
}
