// `mixtune serve`: load a model and answer the OpenAI API on a local port until SIGTERM / Ctrl-C,
// which finish the accepted requests and exit 0.
import { modelConfigOf } from '../io/load.js';
import { ServedModel } from '../serve/engine.js';
import { MixtuneServer } from '../serve/server.js';
import { SERVE_MEMORY_FIXES, checkGenerateMemory } from '../train/memory.js';
import { MixtuneError } from '../util/errors.js';
import { listenOn } from './args.js';

export interface ServeCliOptions {
  model: string;
  tokenizer?: string;
  host: string;
  port: number;
  maxQueue: number;
  apiKey?: string;
  name?: string;
  context?: number;
  maxInputs: number;
  quiet?: boolean;
  force?: boolean;
}

export async function runServe(o: ServeCliOptions): Promise<void> {
  if (o.port > 65535) throw new MixtuneError(`--port ${o.port}: ports go up to 65535`);
  const apiKey = o.apiKey ?? process.env.MIXTUNE_API_KEY;
  if (apiKey !== undefined && apiKey.trim() === '') throw new MixtuneError('--api-key: empty key');
  const config = modelConfigOf(o.model);
  const context = Math.min(o.context ?? config.maxSeqLen, config.maxSeqLen);
  // Before loading: the weights plus the KV caches of the largest request (every MISO input has its own).
  checkGenerateMemory(config, { contextTokens: context, sequences: o.maxInputs, what: 'serve', fixes: SERVE_MEMORY_FIXES, ...(o.force ? { force: true } : {}) });
  const model = ServedModel.load({ model: o.model, ...(o.tokenizer ? { tokenizer: o.tokenizer } : {}), ...(o.name ? { name: o.name } : {}), context, maxInputs: o.maxInputs });
  const log = o.quiet ? undefined : (line: string): void => void process.stderr.write(`mixtune serve: ${line}\n`);
  const server = new MixtuneServer({ model, maxQueue: o.maxQueue, ...(apiKey !== undefined ? { apiKey } : {}), ...(log ? { log } : {}) });
  const url = await listenOn((port, host) => server.listen(port, host), o.port, o.host);
  process.stderr.write(`mixtune serve: ${model.id} on ${url}/v1 (context ${model.context} tokens, queue ${o.maxQueue}${apiKey !== undefined ? ', API key required' : ''})\n`);
  if (!['127.0.0.1', '::1', 'localhost'].includes(o.host) && apiKey === undefined) {
    process.stderr.write(`mixtune serve: warning: listening on ${o.host} without --api-key; anyone who can reach this port can use the model\n`);
  }
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      process.stderr.write(`mixtune serve: ${signal}: finishing accepted requests, then exiting\n`);
      server.shutdown().then(resolve, resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
