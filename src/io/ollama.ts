// An Ollama Modelfile for an exported GGUF file: FROM the file beside it, the context length, stop
// strings, and a Go TEMPLATE for the chat formats mixtune knows (its plain "### User:" template
// and ChatML). For other chat templates Ollama picks a template from the GGUF's
// tokenizer.chat_template itself, so none is written.
import type { LlamaConfig } from '../model/config.js';
import { PLAIN_CHAT_TEMPLATE } from './chat.js';
import type { GgufVocab } from './gguf-vocab.js';

/** mixtune's plain template (chat.ts PLAIN_CHAT_TEMPLATE) in Ollama's Go template language; BOS comes from add_bos_token. */
function plainGoTemplate(eos: string): string {
  return (
    '{{- range $i, $m := .Messages }}{{ if $i }}\n\n{{ end }}' +
    '{{ if eq .Role "system" }}### System:\n{{ .Content }}' +
    '{{ else if eq .Role "user" }}### User:\n{{ .Content }}' +
    `{{ else if eq .Role "assistant" }}### Assistant:\n{{ .Content }}${eos}{{ end }}{{ end }}\n\n### Assistant:\n`
  );
}

const CHATML_GO_TEMPLATE =
  '{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n';

function tokenText(v: GgufVocab, id: number): string | undefined {
  if (id < 0 || id >= v.tokens.length) return undefined;
  const t = v.tokens[id]!;
  return typeof t === 'string' ? t : Buffer.from(t).toString('utf8');
}

function quote(s: string): string {
  return JSON.stringify(s);
}

export function ollamaModelfile(ggufFile: string, vocab: GgufVocab, config: LlamaConfig): string {
  const lines = [`# Ollama Modelfile written by mixtune export gguf (ollama create NAME -f Modelfile)`, `FROM ./${ggufFile}`];
  const tpl = vocab.chatTemplate;
  const eos = tokenText(vocab, vocab.eosId);
  let template: string | undefined;
  if (tpl === PLAIN_CHAT_TEMPLATE) template = plainGoTemplate(eos ?? '');
  else if (tpl !== undefined && tpl.includes('<|im_start|>') && tpl.includes('<|im_end|>')) template = CHATML_GO_TEMPLATE;
  if (template !== undefined) lines.push(`TEMPLATE """${template}"""`);
  lines.push(`PARAMETER num_ctx ${config.maxSeqLen}`);
  const stops = new Set<string>();
  if (eos) stops.add(eos);
  if (template === CHATML_GO_TEMPLATE) stops.add('<|im_end|>');
  for (const s of stops) lines.push(`PARAMETER stop ${quote(s)}`);
  return lines.join('\n') + '\n';
}
