// `mixtune ui`: a local web page over the run folders (runs, results, rows, chat) until SIGTERM /
// Ctrl-C, which end the page's event streams and exit 0.
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { rootOf } from '../ui/files.js';
import { UiServer } from '../ui/server.js';
import { MixtuneError } from '../util/errors.js';
import { listenOn } from './args.js';

export interface UiCliOptions {
  runs: string[];
  config: string[];
  model?: string;
  tokenizer?: string;
  host: string;
  port: number;
  maxInputs: number;
  quiet?: boolean;
}

function checkDir(flag: string, p: string): void {
  let st;
  try {
    st = statSync(p);
  } catch (e) {
    throw new MixtuneError(`${flag} ${p}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such folder' : (e as Error).message}`);
  }
  if (!st.isDirectory()) throw new MixtuneError(`${flag} ${p}: not a folder`);
}

export async function runUi(o: UiCliOptions): Promise<void> {
  if (o.port > 65535) throw new MixtuneError(`--port ${o.port}: ports go up to 65535`);
  const runs = o.runs.length ? o.runs : ['.'];
  for (const r of runs) checkDir('--runs', r);
  for (const c of o.config) {
    let st;
    try {
      st = statSync(c);
    } catch {
      throw new MixtuneError(`--config ${c}: no such file`);
    }
    if (!st.isFile()) throw new MixtuneError(`--config ${c}: not a file (give a train.yaml)`);
  }
  if (o.tokenizer && !o.model) throw new MixtuneError('--tokenizer: only with --model');
  const log = o.quiet ? undefined : (line: string): void => void process.stderr.write(`mixtune ui: ${line}\n`);
  const server = new UiServer({
    roots: runs.map((r) => rootOf(r)), configs: o.config.map((c) => resolve(c)), maxInputs: o.maxInputs,
    ...(o.model ? { model: { path: o.model, ...(o.tokenizer ? { tokenizer: o.tokenizer } : {}) } } : {}),
    ...(log ? { log } : {}),
  });
  const url = await listenOn((port, host) => server.listen(port, host), o.port, o.host);
  process.stderr.write(`mixtune ui: ${url}/ (runs: ${runs.join(', ')}${o.config.length ? `; configs: ${o.config.join(', ')}` : ''}${o.model ? `; model: ${o.model}` : ''})\n`);
  if (!['127.0.0.1', '::1', 'localhost'].includes(o.host)) {
    process.stderr.write(`mixtune ui: warning: listening on ${o.host}; anyone who can reach this port can read the run folders and use the model\n`);
  }
  await new Promise<void>((resolveStop) => {
    const stop = (signal: string): void => {
      process.stderr.write(`mixtune ui: ${signal}: closing\n`);
      server.shutdown().then(resolveStop, resolveStop);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
