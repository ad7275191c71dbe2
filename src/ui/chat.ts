// The Chat view's model: the `mixtune serve` code (ServedModel + MixtuneServer's OpenAI routes)
// mounted under /v1 of the UI server. The model is --model, or a run's final/ chosen on the page;
// it is loaded on first use and replaced when another one is chosen.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { modelConfigOf } from '../io/load.js';
import { ServedModel } from '../serve/engine.js';
import { MixtuneServer } from '../serve/server.js';
import { ApiError } from '../serve/api-error.js';
import { SERVE_MEMORY_FIXES, checkGenerateMemory } from '../train/memory.js';
import { MixtuneError } from '../util/errors.js';

export interface ChatModelChoice {
  /** "model" for --model, else the run id whose final/ it is. */
  id: string;
  label: string;
  path: string;
  tokenizer?: string;
}

export interface ChatHostOptions {
  maxInputs: number;
  maxQueue: number;
  log?: (line: string) => void;
}

export class ChatHost {
  private current: { choice: ChatModelChoice; model: ServedModel; api: MixtuneServer } | null = null;

  constructor(private readonly o: ChatHostOptions) {}

  get loaded(): { id: string; label: string; model: string; context: number } | null {
    const c = this.current;
    return c ? { id: c.choice.id, label: c.choice.label, model: c.model.id, context: c.model.context } : null;
  }

  /** Loads a model (a no-op when it is the one loaded); a model that cannot be loaded is a 400 naming it. */
  select(choice: ChatModelChoice): void {
    if (this.current && this.current.choice.id === choice.id && this.current.choice.path === choice.path) return;
    let model: ServedModel;
    try {
      const config = modelConfigOf(choice.path);
      checkGenerateMemory(config, { contextTokens: config.maxSeqLen, sequences: this.o.maxInputs, what: 'chat', fixes: SERVE_MEMORY_FIXES });
      model = ServedModel.load({ model: choice.path, ...(choice.tokenizer ? { tokenizer: choice.tokenizer } : {}), name: choice.label, maxInputs: this.o.maxInputs });
    } catch (e) {
      if (e instanceof MixtuneError || (e as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new ApiError(400, `cannot load ${choice.label}: ${(e as Error).message.split('\n')[0]}`, 'invalid_request_error', 'model', 'model_not_loadable');
      }
      throw e;
    }
    const api = new MixtuneServer({ model, maxQueue: this.o.maxQueue, ...(this.o.log ? { log: this.o.log } : {}) });
    this.current = { choice, model, api };
    this.o.log?.(`chat: loaded ${choice.label} (${choice.path})`);
  }

  /** A /v1 request: answered by the serve code with the loaded model. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.current) throw new ApiError(409, 'no model is loaded: choose one in the Chat view (or start mixtune ui with --model)', 'invalid_request_error', 'model', 'no_model');
    await this.current.api.handle(req, res);
  }
}
