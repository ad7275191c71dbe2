// `mixtune export gguf`: a model (llama2.c .bin, HF folder, stories260K) + tokenizer -> GGUF v3.
import { Command, Option } from 'commander';
import { exportModelGguf } from '../io/gguf-model.js';
import { GGUF_DTYPES, type GgufDtype } from '../io/gguf-export.js';

export interface ExportGgufCliOptions {
  model: string;
  tokenizer?: string;
  out: string;
  dtype: GgufDtype;
  overwrite?: boolean;
  modelfile?: boolean;
}

export function runExportGguf(o: ExportGgufCliOptions): void {
  const r = exportModelGguf({ model: o.model, tokenizer: o.tokenizer, out: o.out, dtype: o.dtype, overwrite: o.overwrite ?? false, modelfile: o.modelfile ?? false });
  const c = r.config;
  process.stderr.write(
    `mixtune: wrote ${r.path} (GGUF v3, ${r.arch}, ${c.nLayers} layers, dim ${c.dim}, vocab ${c.vocabSize}, ${r.dtype}, ` +
      `tokenizer ${r.vocab.model}${r.vocab.model === 'gpt2' ? `/${r.vocab.pre}` : ''})\n`,
  );
  if (r.modelfile) process.stderr.write(`mixtune: wrote ${r.modelfile}\n`);
}

export function buildExportCommand(): Command {
  // Settings of the parent program are not inherited by an added command: repeat them.
  const cmd = new Command('export')
    .description('Export a model for other runtimes')
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(`mixtune: ${str.replace(/^error: /, '').trimEnd()}\n`) });
  cmd
    .command('gguf')
    .description('Write a model and its tokenizer as a GGUF v3 file for llama.cpp (and Ollama)')
    .requiredOption('--model <path>', 'model: a llama2.c .bin checkpoint, a Hugging Face model folder (e.g. a run\'s final/), or stories260K')
    .option('--tokenizer <path>', 'tokenizer: llama2.c tokenizer.bin or a folder (default: the model\'s own)')
    .requiredOption('--out <file>', 'output .gguf file (written atomically)')
    .addOption(new Option('--dtype <dtype>', 'tensor type of the 2-D weights (norms and biases stay f32)').choices([...GGUF_DTYPES]).default('f32'))
    .option('--overwrite', 'replace an existing output file', false)
    .option('--modelfile', 'also write an Ollama Modelfile beside the GGUF file', false)
    .action((opts: ExportGgufCliOptions) => {
      runExportGguf(opts);
    });
  return cmd;
}
