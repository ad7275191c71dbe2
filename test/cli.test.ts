import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sharedDir } from '../src/util/paths.js';
import { runCli as run, assertOneLineError } from './util.js';

const dir = join(sharedDir(), 'fixtures', 'stories260K');
const model = join(dir, 'stories260K.bin');
const tok = join(dir, 'tok512.bin');

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
