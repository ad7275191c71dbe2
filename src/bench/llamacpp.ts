// llama.cpp as a peer, through node-llama-cpp (a prebuilt CPU binary of llama.cpp), for the GGUF
// agreement tests and `mixtune bench generate peer=llamacpp`.
//
// node-llama-cpp is NOT a dependency of mixtune: `node scripts/install-llamacpp.mjs` installs the
// pinned version into .cache/llamacpp/ (CI does so before `npm test`); MIXTUNE_LLAMACPP_DIR
// points elsewhere. It is loaded with a dynamic import from there, never from node_modules.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { packageRoot } from '../util/paths.js';

export const NODE_LLAMA_CPP_VERSION = '3.21.1';

/** Where scripts/install-llamacpp.mjs puts node-llama-cpp. */
export function llamaCppCacheDir(): string {
  return process.env.MIXTUNE_LLAMACPP_DIR ?? join(packageRoot(), '.cache', 'llamacpp');
}

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any;

/** The installed node-llama-cpp package folder, or null (with the reason) when it is not there. */
export function nodeLlamaCppPath(): { dir: string } | { missing: string } {
  const dir = join(llamaCppCacheDir(), 'node_modules', 'node-llama-cpp');
  const pkg = join(dir, 'package.json');
  if (!existsSync(pkg)) return { missing: `node-llama-cpp is not installed in ${llamaCppCacheDir()} (run: node scripts/install-llamacpp.mjs)` };
  const v = (JSON.parse(readFileSync(pkg, 'utf8')) as { version?: string }).version;
  if (v !== NODE_LLAMA_CPP_VERSION) return { missing: `node-llama-cpp ${v} in ${llamaCppCacheDir()}, expected ${NODE_LLAMA_CPP_VERSION} (run: node scripts/install-llamacpp.mjs)` };
  return { dir };
}

/** One loaded GGUF model in llama.cpp. */
export interface LlamaCppModel {
  /** llama.cpp's tokens of `text` (no BOS, special tokens not parsed). */
  tokenize(text: string): number[];
  /** Whether llama.cpp prepends BOS (tokenizer.ggml.add_bos_token). */
  readonly addsBos: boolean;
  readonly bosId: number | null;
  /**
   * Teacher-forced next-token scores along `tokens`: for each position i, llama.cpp's
   * log p(v | tokens[..i]) - max_v log p — i.e. its logits minus their maximum, recovered from
   * its probabilities (node-llama-cpp exposes no raw logits). -Infinity where p underflowed to 0.
   * `at` (default: every position) picks the positions to return, in that order: with a large
   * vocabulary each position costs node-llama-cpp ~1.5 µs per token to hand over.
   */
  centeredLogits(tokens: readonly number[], opts?: { threads?: number; at?: readonly number[] }): Promise<Float32Array[]>;
  /** Greedy continuation of `prompt` (tokens), `n` new tokens, never stopping early. */
  greedy(prompt: readonly number[], n: number, threads?: number): Promise<number[]>;
  /** Greedy decode speed: `n` new tokens after `prompt` with `threads` threads (one warm-up run first). */
  decodeRate(prompt: readonly number[], n: number, threads: number): Promise<{ tokens: number; seconds: number; tokens_per_s: number }>;
  dispose(): Promise<void>;
}

export interface LlamaCppPeer {
  version: string;
  load(ggufPath: string, opts?: { contextSize?: number }): Promise<LlamaCppModel>;
  dispose(): Promise<void>;
}

/** Loads node-llama-cpp (CPU only, prebuilt binary, never builds or downloads). Throws when it is not installed. */
export async function openLlamaCpp(): Promise<LlamaCppPeer> {
  const where = nodeLlamaCppPath();
  if ('missing' in where) throw new Error(where.missing);
  const mod: Any = await import(pathToFileURL(join(where.dir, 'dist', 'index.js')).href);
  const llama: Any = await mod.getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, progressLogs: false, logLevel: mod.LlamaLogLevel.error });
  return {
    version: NODE_LLAMA_CPP_VERSION,
    load: (p, o) => loadModel(llama, p, o?.contextSize ?? 512),
    dispose: async () => {
      await llama.dispose();
    },
  };
}

async function loadModel(llama: Any, path: string, contextSize: number): Promise<LlamaCppModel> {
  const model: Any = await llama.loadModel({ modelPath: path, gpuLayers: 0, useMmap: true });
  const newContext = async (threads: number): Promise<Any> =>
    model.createContext({
      contextSize, batchSize: contextSize, threads, sequences: 1, flashAttention: false,
      experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32',
    });
  return {
    addsBos: Boolean(model.tokens.shouldPrependBosToken),
    bosId: model.tokens.bos ?? null,
    tokenize: (text) => [...(model.tokenize(text, false) as Iterable<number>)],
    async centeredLogits(tokens, opts = {}) {
      const at = opts.at ?? tokens.map((_, i) => i);
      const want = new Set(at);
      const ctx = await newContext(opts.threads ?? 1);
      try {
        const res: Any[] = await ctx.getSequence().controlledEvaluate(tokens.map((t, i) => (want.has(i) ? [t, { generateNext: { probabilities: true } }] : t)));
        return at.map((i) => {
          const r = res[i];
          const probs: Map<number, number> | undefined = r?.next?.probabilities;
          if (!probs) throw new Error(`llama.cpp gave no probabilities at position ${i}`);
          let top = 0;
          for (const p of probs.values()) if (p > top) top = p;
          const out = new Float32Array(probs.size).fill(-Infinity);
          for (const [tok, p] of probs) {
            if (tok >= out.length) throw new Error(`llama.cpp gave a probability for token ${tok} of a ${out.length}-token vocabulary`);
            if (p > 0) out[tok] = Math.log(p / top);
          }
          return out;
        });
      } finally {
        await ctx.dispose();
      }
    },
    async greedy(prompt, n, threads = 1) {
      const ctx = await newContext(threads);
      try {
        return await greedyOn(ctx.getSequence(), prompt, n);
      } finally {
        await ctx.dispose();
      }
    },
    async decodeRate(prompt, n, threads) {
      const ctx = await newContext(threads);
      try {
        const seq = ctx.getSequence();
        await greedyOn(seq, prompt, Math.min(8, n)); // warm-up
        await seq.clearHistory();
        const t0 = performance.now();
        const out = await greedyOn(seq, prompt, n);
        const s = (performance.now() - t0) / 1000;
        return { tokens: out.length, seconds: Math.round(s * 1e4) / 1e4, tokens_per_s: Math.round((out.length / s) * 10) / 10 };
      } finally {
        await ctx.dispose();
      }
    },
    dispose: async () => {
      await model.dispose();
    },
  };
}

async function greedyOn(seq: Any, prompt: readonly number[], n: number): Promise<number[]> {
  const out: number[] = [];
  if (n <= 0) return out;
  for await (const t of seq.evaluate([...prompt], { temperature: 0, yieldEogToken: true })) {
    out.push(t as number);
    if (out.length >= n) break;
  }
  return out;
}
