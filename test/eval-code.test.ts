import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { sharedDir } from '../src/util/paths.js';
import {
  type HumanEvalItem, type MbppItem, extractCode, humanevalProgram, mbppProgram, probeIsolation, runPool, runPython,
} from '../src/eval/code.js';

const mbpp = readFileSync(join(sharedDir(), 'data', 'mbpp', 'mbpp.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as MbppItem);
const humaneval = gunzipSync(readFileSync(join(sharedDir(), 'data', 'humaneval', 'HumanEval.jsonl.gz')))
  .toString('utf8').trim().split('\n').map((l) => JSON.parse(l) as HumanEvalItem);
/** ~20 items spread over the set (deterministic). */
const sample = <T>(xs: T[], n = 20): T[] => Array.from({ length: n }, (_, i) => xs[Math.floor((i * xs.length) / n)]!);
// A private temporary folder: task folders of other processes (a parallel eval) must not count.
process.env.TMPDIR = mkdtempSync(join(tmpdir(), 'mixtune-test-tmp-'));

const sandboxDirs = (): string[] => readdirSync(tmpdir()).filter((n) => n.startsWith('mixtune-exec-'));

test('sandbox: isolation probe; --no-netns keeps the socket guard', async () => {
  const iso = probeIsolation();
  console.log(`isolation: ${JSON.stringify(iso)}`);
  assert.match(iso.pythonVersion, /^3\./);
  assert.equal(probeIsolation({ netns: 'off' }).netns, 'none');
  assert.equal(probeIsolation().netns, iso.netns);
  const r = await runPython('import socket\nsocket.socket()\n', { timeoutS: 10, netns: 'off' });
  assert.match(r.reason, /PermissionError: network access is disabled/);
});

test('sandbox: a correct program passes; stdout is kept without the marker; stdin is empty; cwd is a fresh folder', async () => {
  const r = await runPython('import os, sys\nprint("hello")\nprint(repr(sys.stdin.read()))\nprint(sorted(os.listdir(".")))\nassert 1 + 1 == 2\n', { timeoutS: 20 });
  assert.equal(r.status, 'passed', r.reason + r.stderr);
  // bwrap: the working folder is the task's empty work folder (the code is mounted read-only elsewhere)
  assert.equal(r.stdout, probeIsolation().sandbox === 'bwrap' ? "hello\n''\n[]\n" : "hello\n''\n['prog.py', 'sandbox.py']\n");
});

test('sandbox: wrong programs fail within the limits and never hang the evaluator', async () => {
  const before = new Set(sandboxDirs());
  const cases: [string, string, RegExp | string][] = [
    ['assertion', 'assert 1 == 2\n', /AssertionError/],
    ['syntax error', 'def f(:\n', /SyntaxError/],
    ['sys.exit(0) before the tests', 'import sys\nsys.exit(0)\nassert False\n', 'exited with code 0 before the tests finished'],
    ['os._exit(0) before the tests', 'import os\nos._exit(0)\n', 'exited with code 0 before the tests finished'],
    ['raise SystemExit in a finally', 'try:\n    pass\nfinally:\n    raise SystemExit(0)\n', 'exited with code 0 before the tests finished'],
    ['infinite loop', 'while True:\n    pass\n', /time limit/],
    ['sleep', 'import time\ntime.sleep(60)\n', /time limit/],
    ['memory bomb', 'x = bytearray(8 * 1024**3)\n', /MemoryError/],
    ['growing memory', 'xs = []\nwhile True:\n    xs.append(bytearray(10**7))\n', /MemoryError|time limit/],
    ['fork', 'import os\npid = os.fork()\nprint(pid)\n', /PermissionError/],
    ['posix.fork + setsid', 'import posix\nif posix.fork() == 0:\n    posix.setsid()\n', /PermissionError/],
    ['fork bomb via subprocess', 'import subprocess\nsubprocess.Popen(["sh", "-c", "sleep 100"])\n', /PermissionError/],
    ['socket', 'import socket\ns = socket.socket()\ns.connect(("1.1.1.1", 80))\n', /PermissionError/],
    ['raw socket', 'import _socket\n_socket.socket()\n', /PermissionError/],
    ['create_connection', 'import socket\nsocket.create_connection(("example.com", 80), timeout=2)\n', /PermissionError/],
    ['output flood', 'while True:\n    print("y" * 1000)\n', /more than/],
    ['ctypes', 'import ctypes\n', /ImportError|ModuleNotFoundError/],
  ];
  const t0 = performance.now();
  const results = await runPool(cases, 2, ([, prog]) => runPython(prog, { timeoutS: 2, memoryMB: 512 }));
  for (let i = 0; i < cases.length; i++) {
    const [name, , expect] = cases[i]!;
    const r = results[i]!;
    assert.equal(r.passed, false, `${name} must fail`);
    if (typeof expect === 'string') assert.equal(r.reason, expect, name);
    else assert.match(r.reason, expect, `${name}: ${r.reason}`);
    assert.ok(r.seconds < 15, `${name} took ${r.seconds}s`);
  }
  assert.ok((performance.now() - t0) / 1000 < 60);
  assert.deepEqual(sandboxDirs().filter((d) => !before.has(d)), [], 'temporary folders are removed');
});

test('sandbox: the network namespace blocks connections even past the socket guard', async (t) => {
  const iso = probeIsolation();
  if (iso.sandbox === 'unsafe' && iso.netns === 'none') {
    t.skip('no network namespace available here (unshare not permitted); only the socket guard applies');
    return;
  }
  // The guard's class subclasses the real one: its base creates a working socket object.
  const prog = 'import _socket\nreal = _socket.socket.__mro__[1]\ns = real()\ns.settimeout(2)\nprint("created")\n' +
    'try:\n    s.connect(("1.1.1.1", 53))\n    print("connected")\nexcept OSError as e:\n    print("blocked", type(e).__name__)\n';
  const r = await runPython(prog, { timeoutS: 10 });
  assert.match(r.stdout, /^created\nblocked/, r.stdout + r.stderr);
  assert.doesNotMatch(r.stdout, /connected/);
});

test('mbpp: reference solutions of ~20 tasks pass; empty / wrong bodies fail', async () => {
  const items = sample(mbpp);
  const good = await runPool(items, 2, (it) => runPython(mbppProgram(it, it.code), { timeoutS: 20 }));
  good.forEach((r, i) => assert.equal(r.status, 'passed', `task ${items[i]!.task_id}: ${r.reason}`));
  const bad = await runPool(items.slice(0, 6), 2, (it, i) => {
    const name = /def\s+(\w+)\s*\(([^)]*)\)/.exec(it.code)![1]!;
    const wrong = i % 2 === 0 ? `def ${name}(*args):\n    pass\n` : `def ${name}(*args):\n    return 12345\n`;
    return runPython(mbppProgram(it, it.code.split('def ')[0] + wrong), { timeoutS: 20 });
  });
  bad.forEach((r, i) => assert.equal(r.passed, false, `wrong solution of task ${items[i]!.task_id} passed`));
});

test('humaneval: canonical solutions of ~20 tasks pass (as bodies and as fenced full functions); empty bodies fail', async () => {
  const items = sample(humaneval);
  const good = await runPool(items, 2, (it) => runPython(humanevalProgram(it, it.canonical_solution), { timeoutS: 20 }));
  good.forEach((r, i) => assert.equal(r.status, 'passed', `${items[i]!.task_id}: ${r.reason}`));
  const fenced = await runPool(items.slice(0, 5), 2, (it) => {
    const completion = `Sure! Here it is:\n\n\`\`\`python\n${it.prompt}${it.canonical_solution}\`\`\`\n\nThis works because...`;
    return runPython(humanevalProgram(it, extractCode(completion, it.entry_point)), { timeoutS: 20 });
  });
  fenced.forEach((r, i) => assert.equal(r.status, 'passed', `${items[i]!.task_id} fenced: ${r.reason}`));
  const bad = await runPool(items.slice(0, 5), 2, (it) => runPython(humanevalProgram(it, '    pass\n'), { timeoutS: 20 }));
  bad.forEach((r, i) => assert.equal(r.passed, false, `${items[i]!.task_id}: an empty body passed`));
});

test('extractCode: fences, languages, unclosed fences, [BEGIN]/[DONE], raw text', () => {
  assert.equal(extractCode('text\n```python\ndef f():\n    return 1\n```\nmore'), 'def f():\n    return 1\n');
  assert.equal(extractCode('```\nx = 1\n```'), 'x = 1\n');
  assert.equal(extractCode('```py\nx = 1\n```'), 'x = 1\n');
  assert.equal(extractCode('```bash\nls\n```\n```python\ny = 2\n```'), 'y = 2\n');
  assert.equal(extractCode('```python\nimport os\n```\n```python\ndef g(): pass\n```\n```python\ndef f(): pass\n```', 'f'), 'def f(): pass\n');
  assert.equal(extractCode('```python\nimport os\n```\n```python\ndef g(): pass\n```'), 'def g(): pass\n');
  assert.equal(extractCode('```python\ndef f():\n    return 1'), 'def f():\n    return 1\n');
  assert.equal(extractCode('[BEGIN]\ndef f(): return 2\n[DONE] trailing'), 'def f(): return 2\n');
  assert.equal(extractCode('    return x + 1\n'), '    return x + 1\n');
  assert.equal(extractCode('def f():\r\n    return 3\r\n'), 'def f():\n    return 3\n');
});

test('humanevalProgram: body continuations extend the prompt, full functions follow it', () => {
  const it: HumanEvalItem = { task_id: 'X/0', prompt: 'import math\n\ndef f(x):\n    """doc"""\n', canonical_solution: '    return x\n', test: 'def check(c):\n    assert c(1) == 1\n', entry_point: 'f' };
  assert.equal(humanevalProgram(it, '    return x\n'), 'import math\n\ndef f(x):\n    """doc"""\n    return x\n\n\ndef check(c):\n    assert c(1) == 1\n\n\ncheck(f)\n');
  assert.ok(humanevalProgram(it, 'def f(x):\n    return x\n').startsWith('import math\n\ndef f(x):\n    """doc"""\n\ndef f(x):\n    return x\n'));
});
