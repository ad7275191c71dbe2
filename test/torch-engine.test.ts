// `mixtune train --engine torch` (python/mixtune_torch) against the native engine on stories260K:
// per-step losses for sft, moi and miso-para; torchrun with 2 processes = 1 process with twice the
// accumulation; resume exactness (and a torch checkpoint resumed by the native engine); errors;
// --fsdp: its one-line refusals here (no CUDA, torch 1.13) and its helpers on CPU (FSDP itself is
// untested until run on GPUs).
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../src/util/paths.js';
import { findTorchPython, torchEnginePath } from '../src/torch/python.js';
import { assertOneLineError, runCli, torchPythonForTests } from './util.js';

const { skip } = torchPythonForTests();

const data = join(packageRoot(), 'examples', 'data');
const CONFIGS: Record<string, string> = {
  sft: `data:
  datasets: [{path: ${data}/gsm8k-train-200.jsonl, columns: {prompt: question, completion: answer}}]
  max_len: 512
  overflow: drop
  eval_split: 0.05
`,
  moi: `data:
  datasets:
    - {path: ${data}/gsm8k-train-200.jsonl, columns: {prompt: question, completion: answer}, domain: math}
    - {path: ${data}/constraints-train-200.jsonl, format: constraints, domain: chat}
  max_len: 512
  overflow: drop
  eval_split: 0.05
recipe: {name: moi, n_mix: 2, system_prompts: {math: [Do math.], chat: [Be kind.]}}
`,
  'miso-para': `data:
  datasets: [{path: ${data}/constraints-train-200.jsonl, format: constraints}]
  eval_datasets: [{path: ${data}/constraints-test-40.jsonl, format: constraints}]
  max_len: 1024
  pack: false
  template: plain
recipe: {name: miso-para, include_full: true, include_bare: true, weighting: uniform}
`,
};

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'mixtune-torch-engine-'));
});

function config(recipe: string, training: string): string {
  const path = join(dir, `${recipe}-${Math.random().toString(36).slice(2, 8)}.yaml`);
  writeFileSync(path, `model: stories260K\noutput_dir: ${join(dir, 'unused')}\nseed: 0\n${CONFIGS[recipe]}training: {${training}}\n`);
  return path;
}

interface Step { step: number; loss?: number; grad_norm?: number; eval_loss?: number }

function train(cfg: string, out: string, ...args: string[]): Step[] {
  const r = runCli('train', '--config', cfg, '--output-dir', out, '--no-progress', ...args);
  assert.equal(r.code, 0, r.stderr);
  return readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Step);
}

const losses = (m: Step[]) => m.filter((s) => s.loss !== undefined).map((s) => s.loss!);

function assertCloseSeries(a: number[], b: number[], rtol: number, what: string): void {
  assert.equal(a.length, b.length, `${what}: ${a.length} vs ${b.length} steps`);
  a.forEach((x, i) => assert.ok(Math.abs(x - b[i]!) <= rtol * Math.abs(b[i]!), `${what}: step ${i + 1}: ${x} vs ${b[i]} (rtol ${rtol})`));
}

for (const recipe of ['sft', 'moi', 'miso-para']) {
  test(`torch engine: ${recipe}, 10 steps of stories260K: per-step losses within 1e-3 of the native engine; final/ loads back`, { skip }, () => {
    const cfg = config(recipe, 'max_steps: 10, micro_batch_size: 2, grad_accum: 2, lr: 0.002, eval_every: 5');
    const native = train(cfg, join(dir, `${recipe}-native`));
    const torch = train(cfg, join(dir, `${recipe}-torch`), '--engine', 'torch');
    assert.equal(losses(native).length, 10);
    assertCloseSeries(losses(torch), losses(native), 1e-3, `${recipe} loss`);
    const evals = (m: Step[]) => m.filter((s) => s.eval_loss !== undefined).map((s) => s.eval_loss!);
    assertCloseSeries(evals(torch), evals(native), 1e-3, `${recipe} eval loss`);
    assert.ok(losses(native)[9]! < losses(native)[0]! * 0.8, 'the loss falls');
    // the same files as a native run: summary.json, final/ (an HF folder mixtune generates from)
    const summary = JSON.parse(readFileSync(join(dir, `${recipe}-torch`, 'summary.json'), 'utf8'));
    assert.equal(summary.steps, 10);
    assert.ok(existsSync(join(dir, `${recipe}-torch`, 'final', 'model.safetensors')));
    const g = runCli('generate', '--model', join(dir, `${recipe}-torch`, 'final'), '--prompt', 'Once', '--temperature', '0', '--max-new-tokens', '8');
    assert.equal(g.code, 0, g.stderr);
    if (recipe === 'sft') {
      const gn = runCli('generate', '--model', join(dir, `${recipe}-native`, 'final'), '--prompt', 'Once', '--temperature', '0', '--max-new-tokens', '8');
      assert.equal(g.stdout, gn.stdout, 'the two engines\' models generate the same text');
    }
  });
}

test('torch engine: LoRA (r=4, every target) on an HF folder: per-step losses within 1e-3 of the native engine; adapter/ and final/', { skip }, () => {
  const hf = join(dir, 'stories-hf');
  assert.equal(runCli('convert', '--from', 'stories260K', '--to', hf).code, 0);
  const cfg = config('sft', 'max_steps: 6, micro_batch_size: 2, grad_accum: 2, lr: 0.01, eval_every: 3');
  const lora = join(dir, 'lora.yaml');
  writeFileSync(lora, readFileSync(cfg, 'utf8').replace('model: stories260K', `model: ${hf}`) + 'lora: {rank: 4, alpha: 8, targets: [q, k, v, o, gate, up, down]}\n');
  const native = train(lora, join(dir, 'lora-native'));
  const torch = train(lora, join(dir, 'lora-torch'), '--engine', 'torch');
  assertCloseSeries(losses(torch), losses(native), 1e-3, 'LoRA loss');
  for (const f of ['adapter/adapter_model.safetensors', 'final/model.safetensors']) assert.ok(existsSync(join(dir, 'lora-torch', f)), f);
  assert.ok(!existsSync(join(dir, 'lora-torch', 'torch-work')), 'the work folder is removed');
});

test('torch engine: --nproc 2 with grad_accum 1 trains as --nproc 1 with grad_accum 2 (within 1e-4); so does --nnodes 2', { skip }, async () => {
  const one = train(config('sft', 'max_steps: 3, micro_batch_size: 2, grad_accum: 2, lr: 0.002'), join(dir, 'np1'), '--engine', 'torch');
  const two = train(config('sft', 'max_steps: 3, micro_batch_size: 2, grad_accum: 1, lr: 0.002'), join(dir, 'np2'), '--engine', 'torch', '--nproc', '2');
  assertCloseSeries(losses(two), losses(one), 1e-4, 'loss');
  assertCloseSeries(two.map((s) => s.grad_norm ?? 0), one.map((s) => s.grad_norm ?? 0), 1e-4, 'grad norm');
  // two "machines" (two mixtune commands on this one, --nnodes 2) train as --nproc 2
  const cfg = config('sft', 'max_steps: 3, micro_batch_size: 2, grad_accum: 1, lr: 0.002');
  const port = String(29500 + Math.floor(Math.random() * 400));
  const node = (rank: number) => spawn(process.execPath, [join(packageRoot(), 'bin', 'mixtune.js'), 'train', '--config', cfg, '--output-dir', join(dir, `nodes-${rank}`),
    '--no-progress', '--engine', 'torch', '--nnodes', '2', '--node-rank', String(rank), '--master-addr', '127.0.0.1', '--master-port', port], { stdio: 'ignore' });
  const exits = await Promise.all([node(1), node(0)].map((p) => new Promise<number | null>((r) => p.on('exit', r))));
  assert.deepEqual(exits, [0, 0]);
  const nodes = readFileSync(join(dir, 'nodes-0', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Step);
  assertCloseSeries(losses(nodes), losses(two), 1e-4, '--nnodes 2 loss');
  assert.ok(existsSync(join(dir, 'nodes-0', 'final', 'model.safetensors')) && !existsSync(join(dir, 'nodes-1', 'final')), 'rank 0\'s machine writes final/');
});

test('torch engine: stop and resume is exact; a torch checkpoint resumes on the native engine', { skip }, () => {
  const cfg = config('sft', 'max_steps: 6, micro_batch_size: 2, grad_accum: 2, lr: 0.002, save_every: 3');
  const full = train(cfg, join(dir, 'res-full'), '--engine', 'torch');
  const out = join(dir, 'res-part');
  train(cfg, out, '--engine', 'torch', '--stop-after', '3');
  assert.ok(existsSync(join(out, 'checkpoint-3', 'optimizer.safetensors')));
  const out2 = join(dir, 'res-cross');
  cpSync(out, out2, { recursive: true });
  const resumed = train(cfg, out, '--engine', 'torch', '--resume');
  assert.deepEqual(losses(resumed), losses(full), 'resumed losses equal the uninterrupted run');
  // the same stopped run, continued by the native engine (a copy made before the torch resume above)
  const native = train(cfg, out2, '--resume');
  assertCloseSeries(losses(native), losses(full), 1e-3, 'native resume of a torch checkpoint');
});

test('torch engine: a Python without torch and torch flags without --engine torch are one-line errors', () => {
  const cfg = config('sft', 'max_steps: 2');
  assertOneLineError(runCli('train', '--config', cfg, '--output-dir', join(dir, 'e1'), '--engine', 'torch', '--python', '/nonexistent/python3'), ['/nonexistent/python3', 'python3-torch']);
  assertOneLineError(runCli('train', '--config', cfg, '--output-dir', join(dir, 'e2'), '--nproc', '2'), ['--nproc', '--engine torch']);
});

test('torch engine: training.bf16_ops is refused; training.precision bf16 needs CUDA (the torch engine\'s bf16 is CUDA autocast)', () => {
  const ops = config('sft', 'max_steps: 2, precision: bf16, bf16_ops: [lm_head]');
  assertOneLineError(runCli('train', '--config', ops, '--output-dir', join(dir, 'b1'), '--engine', 'torch'), ['training.bf16_ops', 'native engine']);
  if (skip !== false) return; // the CUDA check needs a PyTorch to ask
  const bf16 = config('sft', 'max_steps: 2, precision: bf16');
  assertOneLineError(runCli('train', '--config', bf16, '--output-dir', join(dir, 'b2'), '--engine', 'torch', '--cpu'), ['training.precision: bf16', 'CUDA', '--cpu was given']);
  if (!findTorchPython().cuda) {
    assertOneLineError(runCli('train', '--config', bf16, '--output-dir', join(dir, 'b3'), '--engine', 'torch'), ['training.precision: bf16', 'this PyTorch sees none']);
  }
  for (const f of ['b1', 'b2', 'b3']) assert.ok(!existsSync(join(dir, f, 'torch-work')), 'nothing was started');
});

test('torch engine --fsdp: what this machine lacks is one line (CUDA, PyTorch >= 2.0, 2+ processes); LoRA and --engine native are refused', { skip }, () => {
  const cfg = config('sft', 'max_steps: 2');
  const py = findTorchPython();
  const torch2 = Number(py.torchVersion.split('.')[0]) >= 2;
  assertOneLineError(runCli('train', '--config', cfg, '--output-dir', join(dir, 'f1'), '--engine', 'torch', '--fsdp'),
    ['--fsdp needs', '2 or more processes', ...(py.cuda ? [] : ['CUDA GPUs (this PyTorch sees none)']), ...(torch2 ? [] : [`PyTorch >= 2.0 (this is ${py.torchVersion})`])]);
  assertOneLineError(runCli('train', '--config', cfg, '--output-dir', join(dir, 'f2'), '--engine', 'torch', '--fsdp', '--nproc', '2', '--cpu'), ['--fsdp needs', 'CUDA GPUs (--cpu was given)']);
  const lora = join(dir, 'fsdp-lora.yaml');
  writeFileSync(lora, readFileSync(cfg, 'utf8') + 'lora: {rank: 4}\n');
  assertOneLineError(runCli('train', '--config', lora, '--output-dir', join(dir, 'f3'), '--engine', 'torch', '--fsdp', '--nproc', '2'), ['--fsdp', 'LoRA', 'without --fsdp']);
  assertOneLineError(runCli('train', '--config', cfg, '--output-dir', join(dir, 'f4'), '--engine', 'native', '--fsdp'), ['--fsdp', '--engine torch']);
  for (const f of ['f1', 'f2', 'f3', 'f4']) assert.ok(!existsSync(join(dir, f, 'torch-work')), 'nothing was started');
  // train.py repeats the check (every machine of a job runs it): one line on stderr, no traceback
  const work = mkdtempSync(join(tmpdir(), 'mixtune-fsdp-work-'));
  writeFileSync(join(work, 'run.json'), JSON.stringify({ options: { fsdp: true } }));
  const env = { ...process.env, PYTHONPATH: torchEnginePath(), PYTHONDONTWRITEBYTECODE: '1' };
  const r = spawnSync(py.python, ['-m', 'mixtune_torch.train', work], { encoding: 'utf8', env });
  assert.equal(r.status, 1, r.stderr);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /^mixtune torch engine: --fsdp needs .*2 or more processes/);
});

test('torch engine --fsdp: the sharded path\'s helpers on CPU (check_fsdp.py: AdamW, global grad norm, checkpoint gather / load on shards, 2 gloo processes); every module compiles', { skip }, () => {
  const py = findTorchPython();
  const env = { ...process.env, PYTHONPATH: torchEnginePath(), PYTHONDONTWRITEBYTECODE: '1' };
  const r = spawnSync(py.python, ['-m', 'mixtune_torch.check_fsdp'], { encoding: 'utf8', env, timeout: 300_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'ok');
  const pkg = join(torchEnginePath(), 'mixtune_torch');
  const out = mkdtempSync(join(tmpdir(), 'mixtune-pyc-'));
  const files = readdirSync(pkg).filter((f) => f.endsWith('.py'));
  assert.ok(files.includes('fsdp.py') && files.includes('train.py'));
  const c = spawnSync(py.python, ['-c', 'import py_compile, sys, os\nfor i, f in enumerate(sys.argv[2:]): py_compile.compile(f, cfile=os.path.join(sys.argv[1], f"{i}.pyc"), doraise=True)', out, ...files.map((f) => join(pkg, f))], { encoding: 'utf8' });
  assert.equal(c.status, 0, c.stderr);
});
