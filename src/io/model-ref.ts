// Names a user can give instead of a path. `stories260K` is the model that ships inside the
// package (models/stories260K: llama2.c weights + its tok512.bin tokenizer), so the demo, the
// studies and the examples run from a clone or an installed package with nothing else.
import { join } from 'node:path';
import { packageRoot } from '../util/paths.js';

export const EMBEDDED_MODEL_NAMES = ['stories260K'] as const;
export type EmbeddedModelName = (typeof EMBEDDED_MODEL_NAMES)[number];

export interface ModelRef {
  /** The model file or folder to load. */
  model: string;
  /** The tokenizer that belongs to it, when the reference fixes one (embedded models). */
  tokenizer?: string;
  /** The embedded name the user wrote, if any. */
  embedded?: EmbeddedModelName;
}

export function isEmbeddedModelName(s: string): s is EmbeddedModelName {
  return (EMBEDDED_MODEL_NAMES as readonly string[]).includes(s);
}

/** The folder holding the embedded model's files. */
export function embeddedModelDir(name: EmbeddedModelName): string {
  return join(packageRoot(), 'models', name);
}

/**
 * What a model argument means: an embedded name (exactly `stories260K`; write `./stories260K` for
 * a local file or folder of that name) or a path.
 */
export function resolveModelRef(model: string): ModelRef {
  if (isEmbeddedModelName(model)) {
    const dir = embeddedModelDir(model);
    return { model: join(dir, 'stories260K.bin'), tokenizer: join(dir, 'tok512.bin'), embedded: model };
  }
  return { model };
}
