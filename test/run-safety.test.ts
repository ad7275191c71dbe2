// Issue 12, "runs that can be lost": Ctrl-C stops with a checkpoint and resumes exactly; a run owns
// its output_dir (lock, finished / unfinished runs refused, resume only of the same settings);
// a failed export keeps the trained state; disk-full errors name the file; killed-write leftovers
// are cleaned up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../src/util/paths.js';

const bin = join(packageRoot(), 'bin', 'mixtune.js');
const GSM = join(packageRoot(), 'examples', 'data', 'gsm8k-train-200.jsonl');

function config(dir: string, extra = ''): string {
  const p = join(dir, 'train.yaml');
  writeFileSync(p, `model: stories260K\noutput_dir: ${join(dir, 'out')}\nseed: 3\ndata:\n  datasets: [{path: ${GSM}, columns: {prompt: question, completion: answer}, limit: 60}]\n` +
    `  max_len: 512\n  overflow: drop\ntraining:\n  max_steps: 400\n  micro_batch_size: 1\n  lr: 0.002\n${extra}`);
  return p;
}

function run(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args, '--no-progress'], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Resolves when `file` has at least `lines` lines (the run is past its first steps). */
async function waitForLines(file: string, lines: number, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error('the run ended before it could be interrupted');
    if (existsSync(file) && readFileSync(file, 'utf8').split('\n').filter(Boolean).length >= lines) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${file} never reached ${lines} lines`);
}

function exited(child: ChildProcess): Promise<{ code: number | null; stderr: string }> {
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((res) => child.on('exit', (code) => res({ code, stderr })));
}

test('Ctrl-C stops after the current step with a checkpoint, says how to resume (exit 130), and --resume ends bit-identical to an uninterrupted run', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-sigint-'));
  const cfg = config(dir);
  const child = spawn(process.execPath, [bin, 'train', '--config', cfg, '--no-progress'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const done = exited(child);
  await waitForLines(join(dir, 'out', 'metrics.jsonl'), 3, child);
  child.kill('SIGINT');
  const r = await done;
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /SIGINT: stopping after this step with a checkpoint/);
  assert.match(r.stderr, /stopped at step \d+ \(checkpoint .*checkpoint-\d+\), continue with: mixtune train --config .* --resume/);
  assert.equal(readdirSync(join(dir, 'out')).filter((f) => f.startsWith('checkpoint-')).length, 1);
  assert.ok(!existsSync(join(dir, 'out', '.mixtune.lock')), 'the lock was not released');
  const resumed = run('train', '--config', cfg, '--resume');
  assert.equal(resumed.code, 0, resumed.stderr);
  const ref = mkdtempSync(join(tmpdir(), 'mixtune-sigint-ref-'));
  const whole = run('train', '--config', config(ref));
  assert.equal(whole.code, 0, whole.stderr);
  assert.ok(readFileSync(join(dir, 'out', 'final', 'model.safetensors')).equals(readFileSync(join(ref, 'out', 'final', 'model.safetensors'))), 'resumed weights differ');
});

test('a second Ctrl-C aborts at once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-sigint2-'));
  const child = spawn(process.execPath, [bin, 'train', '--config', config(dir, '  micro_batch_size: 1\n'.replace(/.*/, '')), '--no-progress'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const done = exited(child);
  await waitForLines(join(dir, 'out', 'metrics.jsonl'), 2, child);
  child.kill('SIGINT');
  child.kill('SIGINT');
  const r = await done;
  assert.equal(r.code, 130, r.stderr);
  assert.ok(!existsSync(join(dir, 'out', 'final')));
});

test('output_dir: a finished run is never retrained silently (--overwrite replaces it); an unfinished one needs --resume or --overwrite', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-owned-'));
  const cfg = config(dir);
  assert.equal(run('train', '--config', cfg, '--max-steps', '3').code, 0);
  const again = run('train', '--config', cfg, '--max-steps', '3');
  assert.equal(again.code, 1);
  assert.match(again.stderr, /^mixtune: output_dir .*out holds a finished run \(final\/\); pass --overwrite to replace it/);
  const over = run('train', '--config', cfg, '--max-steps', '3', '--overwrite');
  assert.equal(over.code, 0, over.stderr);
  const stopped = run('train', '--config', cfg, '--max-steps', '6', '--stop-after', '2', '--overwrite');
  assert.equal(stopped.code, 0, stopped.stderr);
  const fresh = run('train', '--config', cfg, '--max-steps', '6');
  assert.equal(fresh.code, 1);
  assert.match(fresh.stderr, /holds an unfinished run \(1 checkpoint\); pass --resume to continue it, or --overwrite to start over/);
  // resume with other settings: refused, naming what differs
  const other = run('train', '--config', cfg, '--max-steps', '6', '--resume', '--set', 'training.lr=0.003');
  assert.equal(other.code, 1);
  assert.match(other.stderr, /--resume: .* holds a run with other settings \(training\.lr: 0\.002 in the run, 0\.003 now\)/);
  const ok = run('train', '--config', cfg, '--max-steps', '6', '--resume');
  assert.equal(ok.code, 0, ok.stderr);
});

test('output_dir lock: a second run on the same folder is refused while the first runs; a dead owner\'s lock is stale', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-lock-'));
  const cfg = config(dir);
  const first = spawn(process.execPath, [bin, 'train', '--config', cfg, '--no-progress'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const done = exited(first);
  await waitForLines(join(dir, 'out', 'metrics.jsonl'), 1, first);
  const second = run('train', '--config', cfg, '--overwrite');
  assert.equal(second.code, 1);
  assert.match(second.stderr, new RegExp(`^mixtune: output_dir .* is in use by another mixtune train \\(pid ${first.pid}, since`));
  first.kill('SIGKILL');
  await done;
  assert.ok(existsSync(join(dir, 'out', '.mixtune.lock')), 'SIGKILL leaves the lock behind');
  const after = run('train', '--config', cfg, '--overwrite', '--max-steps', '2');
  assert.equal(after.code, 0, after.stderr);
});

test('a failed export keeps the trained state as a checkpoint; --resume then writes final/', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-export-'));
  const cfg = config(dir, 'lora:\n  rank: 4\n');
  mkdirSync(join(dir, 'out'));
  writeFileSync(join(dir, 'out', 'adapter'), 'not a folder'); // the LoRA adapter export will fail
  const r = run('train', '--config', cfg, '--max-steps', '3');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /the trained state is kept in .*checkpoint-3: fix the problem, then mixtune train --config .* --resume writes final\//);
  rmSync(join(dir, 'out', 'adapter'));
  const again = run('train', '--config', cfg, '--max-steps', '3', '--resume');
  assert.equal(again.code, 0, again.stderr);
  assert.ok(existsSync(join(dir, 'out', 'final', 'model.safetensors')));
  assert.ok(!existsSync(join(dir, 'out', 'checkpoint-3')), 'the safety checkpoint stays after a successful export');
});

test('leftover .checkpoint-N.tmp-PID folders of a killed run are removed by the next run', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-leftover-'));
  const cfg = config(dir);
  assert.equal(run('train', '--config', cfg, '--max-steps', '4', '--stop-after', '2').code, 0);
  mkdirSync(join(dir, 'out', '.checkpoint-3.tmp-99999'));
  writeFileSync(join(dir, 'out', '.checkpoint-3.tmp-99999', 'model.safetensors'), 'half');
  const r = run('train', '--config', cfg, '--max-steps', '4', '--resume');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /removed 1 unfinished checkpoint/);
  assert.deepEqual(readdirSync(join(dir, 'out')).filter((f) => f.includes('.tmp-')), []);
});

test('disk full: the error names the file and says ENOSPC; no half checkpoint is left', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-full-'));
  const out = join(dir, 'out');
  mkdirSync(out);
  const cfg = config(dir, '  save_every: 1\n');
  const probe = spawnSync('unshare', ['-m', 'sh', '-c', `mount -t tmpfs -o size=600k tmpfs "${out}" && true`]);
  if (probe.status !== 0) {
    t.skip('cannot mount a small tmpfs here (needs root and mount namespaces)');
    return;
  }
  const r = spawnSync('unshare', ['-m', 'sh', '-c', `mount -t tmpfs -o size=600k tmpfs "${out}" && "${process.execPath}" "${bin}" train --config "${cfg}" --max-steps 3 --no-progress; echo "exit=$?"; ls -a "${out}"`], { encoding: 'utf8' });
  assert.match(r.stdout, /exit=1/);
  assert.match(r.stderr, /^mixtune: .*checkpoint-1.*\/(model|optimizer)\.safetensors: cannot write safetensors: ENOSPC \(no space left on the device\)/m);
  assert.doesNotMatch(r.stdout, /\.checkpoint-1\.tmp/);
});

test('an output_dir that cannot be written is a one-line error before any data preparation', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-notdir-'));
  const cfg = config(dir);
  writeFileSync(join(dir, 'out'), 'a file where the folder should be');
  const t0 = Date.now();
  const r = run('train', '--config', cfg);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^mixtune: output_dir .*out: not a writable folder \((EEXIST|ENOTDIR)\)\n$/);
  assert.ok(Date.now() - t0 < 5000);
});
