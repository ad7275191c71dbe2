import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot, sharedDir } from '../src/util/paths.js';

const bin = join(packageRoot(), 'bin', 'mixtune.js');
const dir = join(sharedDir(), 'fixtures', 'stories260K');
const model = join(dir, 'stories260K.bin');
const tok = join(dir, 'tok512.bin');

function run(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function assertOneLineError(r: { code: number; stderr: string }, mentions: string[]): void {
  assert.notEqual(r.code, 0);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `expected one line, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^mixtune: /);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  for (const m of mentions) assert.ok(lines[0]!.includes(m), `'${lines[0]}' should mention '${m}'`);
}

test('cli: generate greedy matches llama2.c output for the empty prompt', () => {
  const r = run('generate', '--model', model, '--tokenizer', tok, '--temperature', '0', '--max-new-tokens', '200', '--no-stop');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, readFileSync(join(dir, 'expected_greedy_200.txt'), 'utf8') + '\n');
});

test('cli: --echo prints the prompt first, then the continuation', () => {
  const plain = run('generate', '--model', model, '--tokenizer', tok, '--prompt', 'Once upon a time', '--temperature', '0', '--max-new-tokens', '20');
  const echo = run('generate', '--model', model, '--tokenizer', tok, '--prompt', 'Once upon a time', '--temperature', '0', '--max-new-tokens', '20', '--echo');
  assert.equal(plain.code, 0, plain.stderr);
  assert.equal(echo.stdout, 'Once upon a time' + plain.stdout);
  assert.ok(plain.stdout.length > 20);
});

test('cli: unknown flag, missing file, truncated checkpoint, corrupt tokenizer give one-line errors', () => {
  assertOneLineError(run('generate', '--model', model, '--tokenizer', tok, '--bogus'), ['--bogus']);
  assertOneLineError(run('generate', '--model', '/nonexistent/m.bin', '--tokenizer', tok), ['/nonexistent/m.bin']);
  assertOneLineError(run('generate', '--model', model, '--tokenizer', tok, '--temperature', 'hot'), ['--temperature']);
  const tmp = mkdtempSync(join(tmpdir(), 'mixtune-cli-'));
  const cut = join(tmp, 'cut.bin');
  writeFileSync(cut, readFileSync(model).subarray(0, 5000));
  assertOneLineError(run('generate', '--model', cut, '--tokenizer', tok), [cut]);
  const badTok = join(tmp, 'tok.bin');
  const t = Buffer.from(readFileSync(tok));
  t.writeInt32LE(-5, 4 + 4); // first record's length
  writeFileSync(badTok, t);
  assertOneLineError(run('generate', '--model', model, '--tokenizer', badTok), [badTok]);
  assertOneLineError(run('bench', 'nosuchbench'), ['nosuchbench']);
  assertOneLineError(run('bench', 'train', 'dim=abc'), ['dim']);
  assertOneLineError(run('frobnicate'), ['frobnicate']);
});
