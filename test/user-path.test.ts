// What a user has is the repository or the npm package, nothing beside it: the built CLI run from a
// folder outside the repository, with MIXTUNE_SHARED pointing at an empty folder, and the packed
// tarball installed into an empty project, must run the embedded model and the demo.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../src/util/paths.js';
import { sharedDir } from '../src/util/paths.js';

const root = packageRoot();
const bin = join(root, 'bin', 'mixtune.js');
// llama2.c's own greedy output from BOS (the fixture is the test oracle; users never need it)
const expected = readFileSync(join(sharedDir(), 'fixtures', 'stories260K', 'expected_greedy_200.txt'), 'utf8');

function userEnv(): NodeJS.ProcessEnv {
  const empty = mkdtempSync(join(tmpdir(), 'mixtune-no-shared-'));
  return { ...process.env, MIXTUNE_SHARED: empty };
}

function greedyArgs(): string[] {
  return ['generate', '--model', 'stories260K', '--prompt', 'Once upon a time', '--temperature', '0', '--max-new-tokens', '60', '--echo'];
}

/** The echoed prompt and 60 greedy tokens: a long prefix of llama2.c's 200-token text. */
function assertGreedy(stdout: string): void {
  const text = stdout.replace(/\n$/, '');
  assert.ok(text.startsWith('Once upon a time, there was a little girl named Lily.'), `unexpected start: ${text.slice(0, 80)}`);
  assert.ok(text.length > 150, `only ${text.length} characters`);
  assert.equal(text, expected.slice(0, text.length), 'the greedy text differs from llama2.c\'s');
}

test('user path: generate --model stories260K from a folder outside the repository, without ../shared', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'mixtune-user-'));
  const r = spawnSync(process.execPath, [bin, ...greedyArgs()], { cwd, env: userEnv(), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assertGreedy(r.stdout);
});

test('user path: mixtune demo runs on the embedded model without ../shared and writes results.json', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'mixtune-user-'));
  const out = join(cwd, 'demo-out');
  const r = spawnSync(process.execPath, [bin, 'demo', '--steps', '2', '--n-train', '32', '--n-test', '8', '--max-new-tokens', '32', '--out', out, '--no-progress'],
    { cwd, env: userEnv(), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const res = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { recipes: Record<string, { inst_strict: number }>; config: { model: string } };
  assert.deepEqual(Object.keys(res.recipes).sort(), ['base', 'miso-para', 'sft']);
  for (const m of Object.values(res.recipes)) assert.ok(m.inst_strict >= 0 && m.inst_strict <= 1);
  assert.equal(res.config.model, 'stories260K');
  rmSync(cwd, { recursive: true, force: true });
});

test('user path: a missing model fails before any data is synthesized', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'mixtune-user-'));
  const out = join(cwd, 'demo-out');
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [bin, 'demo', '--model', join(cwd, 'nope.bin'), '--out', out, '--no-progress'], { cwd, env: userEnv(), encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^mixtune: .*nope\.bin.*model not found/);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.ok(!existsSync(join(out, 'data')), 'demo synthesized data before checking its model');
  assert.ok(Date.now() - t0 < 15000);
});

test('user path: npm pack, install the tarball into an empty project, npx mixtune generate --model stories260K', { timeout: 600_000 }, () => {
  const work = mkdtempSync(join(tmpdir(), 'mixtune-pack-'));
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const pack = spawnSync(npm, ['pack', '--pack-destination', work, '--ignore-scripts'], { cwd: root, encoding: 'utf8' });
  assert.equal(pack.status, 0, pack.stderr);
  const tgz = readdirSync(work).find((f) => f.startsWith('mixtune-') && f.endsWith('.tgz'));
  assert.ok(tgz, 'npm pack wrote no tarball');
  const proj = join(work, 'project');
  const init = spawnSync('sh', ['-c', `mkdir -p "${proj}" && cd "${proj}" && ${npm} init -y >/dev/null && ${npm} i --no-audit --no-fund "../${tgz}"`], { encoding: 'utf8' });
  assert.equal(init.status, 0, init.stderr);
  assert.ok(existsSync(join(proj, 'node_modules', 'mixtune', 'models', 'stories260K', 'stories260K.bin')), 'the package does not ship the embedded model');
  const r = spawnSync('npx', ['--no-install', 'mixtune', ...greedyArgs()], { cwd: proj, env: userEnv(), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assertGreedy(r.stdout);
  rmSync(work, { recursive: true, force: true });
});

test('user path: every examples/*.yaml trains from a copy of the package files alone (2 steps)', { timeout: 300_000 }, () => {
  const examples = readdirSync(join(root, 'examples')).filter((f) => f.endsWith('.yaml'));
  assert.ok(examples.length >= 3, 'expected the sft, lora and miso examples');
  for (const f of examples) {
    const text = readFileSync(join(root, 'examples', f), 'utf8');
    assert.ok(!text.includes('../shared') && !text.includes('shared/'), `${f} points at ../shared, which users do not have`);
    const cwd = mkdtempSync(join(tmpdir(), 'mixtune-example-'));
    const r = spawnSync(process.execPath, [bin, 'train', '--config', join(root, 'examples', f), '--max-steps', '2', '--output-dir', join(cwd, 'out'), '--no-progress'],
      { cwd, env: userEnv(), encoding: 'utf8' });
    assert.equal(r.status, 0, `${f}: ${r.stderr}`);
    assert.ok(existsSync(join(cwd, 'out', 'final', 'model.safetensors')), `${f}: no final/ model`);
    rmSync(cwd, { recursive: true, force: true });
  }
});

test('user path: convert --from stories260K (no --tokenizer) writes the same folder as from the file + tok512.bin', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'mixtune-user-'));
  const fixture = join(sharedDir(), 'fixtures', 'stories260K');
  const a = spawnSync(process.execPath, [bin, 'convert', '--from', 'stories260K', '--to', join(cwd, 'a')], { cwd, env: userEnv(), encoding: 'utf8' });
  assert.equal(a.status, 0, a.stderr);
  const b = spawnSync(process.execPath, [bin, 'convert', '--from', join(fixture, 'stories260K.bin'), '--tokenizer', join(fixture, 'tok512.bin'), '--to', join(cwd, 'b')], { cwd, encoding: 'utf8' });
  assert.equal(b.status, 0, b.stderr);
  for (const f of ['model.safetensors', 'tokenizer.json', 'tokenizer.bin', 'config.json']) {
    assert.ok(readFileSync(join(cwd, 'a', f)).equals(readFileSync(join(cwd, 'b', f))), `${f} differs`);
  }
  rmSync(cwd, { recursive: true, force: true });
});
