// Request bodies of the OpenAI-compatible endpoints, validated with zod. Fields mixtune does not
// use are ignored (as OpenAI-compatible servers do); fields it cannot honour (n > 1, penalties,
// logprobs, image content) are a 400 naming the field rather than a silently different answer.
import { z } from 'zod';
import { badRequest } from './api-error.js';

const Weighting = z.enum(['uniform', 'fid', 'vanilla']);
const Positions = z.enum(['para', 'succ']);

const ContentPart = z.looseObject({ type: z.string(), text: z.string().optional() });

const Message = z.object({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']),
  content: z.union([z.string(), z.array(ContentPart), z.null()]).optional(),
  name: z.string().optional(),
  tool_calls: z.array(z.object({
    id: z.string().optional(),
    type: z.literal('function').optional(),
    function: z.object({ name: z.string().min(1), arguments: z.union([z.string(), z.record(z.string(), z.unknown())]) }),
  })).nullable().optional(),
  tool_call_id: z.string().optional(),
});
export type ApiMessage = z.infer<typeof Message>;

/** Sampling and control fields both endpoints share. */
const common = {
  model: z.string().optional(),
  max_tokens: z.number().int().min(1).nullable().optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().gt(0).max(1).nullable().optional(),
  /** Not OpenAI's; llama.cpp's and vLLM's servers accept it too. */
  top_k: z.number().int().min(0).nullable().optional(),
  seed: z.number().int().nullable().optional(),
  stop: z.union([z.string().min(1), z.array(z.string().min(1)).max(4)]).nullable().optional(),
  n: z.number().int().refine((v) => v === 1, 'only n = 1 is supported').nullable().optional(),
  stream: z.boolean().nullable().optional(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullable().optional(),
  presence_penalty: z.number().refine((v) => v === 0, 'presence penalties are not supported (send 0 or leave it out)').nullable().optional(),
  frequency_penalty: z.number().refine((v) => v === 0, 'frequency penalties are not supported (send 0 or leave it out)').nullable().optional(),
  logit_bias: z.record(z.string(), z.number()).refine((v) => Object.keys(v).length === 0, 'logit_bias is not supported').nullable().optional(),
  /** Not OpenAI's (vLLM's and llama.cpp's): keep generating past end-of-sequence tokens, e.g. for benchmarks. */
  ignore_eos: z.boolean().nullable().optional(),
  user: z.string().optional(),
};

export const ChatRequest = z.object({
  ...common,
  messages: z.array(Message).optional(),
  max_completion_tokens: z.number().int().min(1).nullable().optional(),
  logprobs: z.boolean().refine((v) => !v, 'logprobs are not supported').nullable().optional(),
  top_logprobs: z.number().refine((v) => v === 0, 'logprobs are not supported').nullable().optional(),
  response_format: z.object({ type: z.string() }).refine((v) => v.type === 'text', 'only response_format {"type": "text"} is supported').nullable().optional(),
  tools: z.array(z.looseObject({ type: z.literal('function'), function: z.looseObject({ name: z.string().min(1) }) })).nullable().optional(),
  tool_choice: z.union([z.enum(['none', 'auto']), z.unknown().refine(() => false, 'only tool_choice "auto" or "none" is supported (the model decides)')]).nullable().optional(),
  /** MISO generation: one answer decoded from several inputs (each a list of messages). */
  mixtune: z.object({
    inputs: z.array(z.array(Message).min(1)).min(1),
    weighting: Weighting.optional(),
    positions: Positions.optional(),
  }).optional(),
});
export type ChatRequest = z.infer<typeof ChatRequest>;

export const CompletionRequest = z.object({
  ...common,
  prompt: z.union([z.string(), z.array(z.string()).length(1), z.array(z.number().int().min(0)).min(1), z.array(z.array(z.number().int().min(0)).min(1)).length(1)]).optional(),
  echo: z.boolean().nullable().optional(),
  suffix: z.string().refine((v) => v === '', 'suffix (insertion) is not supported').nullable().optional(),
  best_of: z.number().int().refine((v) => v === 1, 'only best_of = 1 is supported').nullable().optional(),
  logprobs: z.number().refine((v) => v === 0, 'logprobs are not supported').nullable().optional(),
  /** MISO generation: one completion decoded from several input texts; `prompt` starts the output. */
  mixtune: z.object({
    inputs: z.array(z.string()).min(1),
    weighting: Weighting.optional(),
    positions: Positions.optional(),
  }).optional(),
});
export type CompletionRequest = z.infer<typeof CompletionRequest>;

/** Parses a body with a schema; the first problem becomes a 400 naming the field. */
export function parseRequest<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw badRequest('the request body must be a JSON object');
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const param = issue.path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i > 0 ? '.' : ''}${String(p)}`)).join('') || null;
  throw badRequest(param ? `${param}: ${issue.message}` : issue.message, param, 'invalid_value');
}
