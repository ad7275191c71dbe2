// Issue 18 (kernel isolation and evaluator robustness): programs that get past the Python-level
// guards still cannot leave processes or files behind, reach the network or the host's sockets,
// write outside their folder, see another task's folder, or make the evaluator fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { probeIsolation, runFunctionTests, runPool, runPython } from '../src/eval/code.js';
import { runnerProgram } from '../src/eval/verdict.py.js';
import { packageRoot } from '../src/util/paths.js';

// A private temporary folder: task folders of other processes (a parallel eval) must not count.
process.env.TMPDIR = mkdtempSync(join(tmpdir(), 'mixtune-test-tmp-'));

// A fresh `posix` module from the builtin importer: the preamble's patched os/posix functions are
// gone, so only the kernel sandbox stands between the program and the machine.
const UNGUARDED = 'import importlib.util as _u, importlib.machinery as _m\nP = _u.module_from_spec(_m.BuiltinImporter.find_spec("posix"))\n';

function mustBwrap(): void {
  const iso = probeIsolation();
  assert.equal(iso.sandbox, 'bwrap', 'these tests need the bubblewrap sandbox (.ci/run installs bubblewrap)');
}

test('sandbox (bwrap): runs as an unprivileged uid with a read-only root and private /tmp, /var/tmp, /dev/shm', async () => {
  mustBwrap();
  const tag = `mixtune-leak-${process.pid}-${Date.now()}`;
  const prog = UNGUARDED + `import os\nprint(os.getuid(), os.getgid())\n` +
    `for d in ("/tmp", "/var/tmp", "/dev/shm"):\n    open(d + "/${tag}", "w").write("x")\n` +
    `for p in ("${join(packageRoot(), 'dist', tag)}", "/etc/${tag}", "/usr/${tag}"):\n    try:\n        open(p, "w").write("x"); print("WROTE", p)\n    except OSError as e:\n        print("denied", type(e).__name__)\n` +
    `print(sorted(n for n in os.listdir("/tmp") if n not in ("work", "task", "${tag}")))\n`;
  const r = await runPython(prog, { timeoutS: 20 });
  assert.equal(r.status, 'passed', r.reason + r.stderr);
  assert.match(r.stdout, /^65534 65534\n/);
  assert.doesNotMatch(r.stdout, /WROTE/);
  assert.match(r.stdout, /\[\]\n?$/, 'another task or the host is visible in /tmp');
  for (const d of ['/tmp', tmpdir(), '/var/tmp', '/dev/shm', join(packageRoot(), 'dist')]) assert.ok(!existsSync(join(d, tag)), `${d}/${tag} leaked to the host`);
});

test('sandbox (bwrap): forked, setsid and posix_spawned children die with the task', async () => {
  mustBwrap();
  const tag = `mixtune_orphan_${process.pid}_${Date.now()}`;
  const prog = UNGUARDED +
    `for i in range(20):\n    if P.fork() == 0:\n        P.setsid()\n        P.execv("/bin/sleep", ["/bin/sleep", "30", "${tag}"])\n` +
    `try:\n    P.posix_spawn("/bin/sleep", ["/bin/sleep", "30", "${tag}"], {})\nexcept Exception as e:\n    print("spawn", e)\nprint("spawned")\n`;
  const r = await runPython(prog, { timeoutS: 10 });
  assert.equal(r.status, 'passed', r.reason + r.stderr);
  await new Promise((res) => setTimeout(res, 300));
  const ps = spawnSync('pgrep', ['-f', tag], { encoding: 'utf8' });
  assert.equal(ps.stdout.trim(), '', `processes survived the task: ${ps.stdout}`);
});

test('sandbox (bwrap): no TCP to the host, no AF_UNIX path sockets of the host, even without the guard', async () => {
  mustBwrap();
  const server = createServer((s) => s.end('hello'));
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  const port = (server.address() as { port: number }).port;
  const sock = join(tmpdir(), `mixtune-sock-${process.pid}`);
  const unix = createServer((s) => s.end('hello'));
  await new Promise<void>((res) => unix.listen(sock, res));
  try {
    const prog = 'import _socket\nreal = _socket.socket.__mro__[1]\n' +
      `s = real(_socket.AF_INET, _socket.SOCK_STREAM)\ns.settimeout(2)\ntry:\n    s.connect(("127.0.0.1", ${port})); print("TCP CONNECTED")\nexcept OSError as e:\n    print("tcp blocked", type(e).__name__)\n` +
      `u = real(_socket.AF_UNIX, _socket.SOCK_STREAM)\ntry:\n    u.connect("${sock}"); print("UNIX CONNECTED")\nexcept OSError as e:\n    print("unix blocked", type(e).__name__)\n`;
    const r = await runPython(prog, { timeoutS: 10 });
    assert.match(r.stdout, /tcp blocked/, r.stdout + r.stderr);
    assert.match(r.stdout, /unix blocked/, r.stdout + r.stderr);
    assert.doesNotMatch(r.stdout, /CONNECTED/);
  } finally {
    server.close();
    unix.close();
  }
});

test('the evaluator survives tasks whose folders resist removal (deep long names, chmod 000) and keeps scoring', async () => {
  const deep = UNGUARDED + 'import os\nd = "."\nfor i in range(40):\n    d = os.path.join(d, "x" * 200)\n    try:\n        os.mkdir(d)\n    except OSError:\n        break\n' +
    'os.mkdir("locked")\nopen("locked/f", "w").write("x")\nP.chmod("locked", 0)\nprint("done")\n';
  const before = readdirSync(tmpdir()).filter((n) => n.startsWith('mixtune-exec-')).length;
  const results = await runPool([deep, deep, 'assert 1 + 1 == 2\n'], 2, (p) => runPython(p, { timeoutS: 20 }));
  assert.deepEqual(results.map((r) => r.status), ['passed', 'passed', 'passed'], results.map((r) => r.reason).join(' | '));
  const after = readdirSync(tmpdir()).filter((n) => n.startsWith('mixtune-exec-')).length;
  assert.ok(after <= before, 'task folders were left behind');
});

// Issue 18, item 1: the verdict is decided outside the candidate's process.
const ADD_TESTS = 'assert add(2, 3) == 5\nassert add(10, 1) == 11\n';
const addTask = (solution: string) => ({ solution, tests: ADD_TESTS, entries: ['add'], check: false, program: `${solution}\n${ADD_TESTS}` });

test('verdict outside the sandbox: correct passes, wrong fails, and forged passes fail', async () => {
  const ok = await runFunctionTests(addTask('def add(a, b):\n    return a + b\n'), { timeoutS: 20 });
  assert.equal(ok.passed, true, ok.reason);
  assert.equal(ok.verdict, 'outside');
  const adversarial: Record<string, string> = {
    wrong: 'def add(a, b):\n    return a - b\n',
    'always-equal object': 'class E:\n    def __eq__(self, o):\n        return True\ndef add(a, b):\n    return E()\n',
    'int subclass equal to everything': 'class I(int):\n    def __eq__(self, o):\n        return True\n    __hash__ = int.__hash__\ndef add(a, b):\n    return I(0)\n',
    'exit 0 before the tests': 'import os\nprint("done")\nos._exit(0)\n',
    'sys.exit(0) at import': 'import sys\nsys.exit(0)\n',
    'excepthook printing a marker': 'import sys\nsys.excepthook = lambda *a: print("__mixtune_done__")\ndef add(a, b):\n    raise ValueError()\n',
    'settrace / frame tampering': 'import sys\ndef add(a, b):\n    f = sys._getframe(1)\n    f.f_globals["enc"] = lambda *a, **k: {"i": "5"}\n    return None\n',
    'unserializable result': 'def add(a, b):\n    return lambda: a + b\n',
  };
  for (const [name, sol] of Object.entries(adversarial)) {
    const r = await runFunctionTests(addTask(sol), { timeoutS: 20 });
    assert.equal(r.passed, false, `${name} passed (${r.reason})`);
  }
});

test('verdict outside the sandbox: the candidate never sees the expected values; HumanEval-style check(candidate)', async () => {
  // the sandboxed program holds the solution and the recorded arguments, never the tests' answers
  const prog = runnerProgram('def add(a, b):\n    return a + b\n', [{ fn: 'add', args: { l: [{ i: '2' }, { i: '3' }] } }, { fn: 'add', args: { l: [{ i: '10' }, { i: '1' }] } }]);
  assert.doesNotMatch(prog, /\b11\b|== 5/);
  const tests = 'import math\n\ndef check(candidate):\n    for x in range(5):\n        assert candidate(x) == x * x\n    assert math.isclose(candidate(1.5), 2.25)\n';
  const good = await runFunctionTests({ solution: 'def sq(x):\n    return x * x\n', tests, entries: ['sq'], check: true, program: '' }, { timeoutS: 20 });
  assert.equal(good.passed, true, good.reason);
  const bad = await runFunctionTests({ solution: 'def sq(x):\n    return x + x\n', tests, entries: ['sq'], check: true, program: '' }, { timeoutS: 20 });
  assert.equal(bad.passed, false);
});

test('without a working bwrap, code evaluation refuses unless --unsafe-no-sandbox (and the summary says so)', () => {
  const bin = join(packageRoot(), 'bin', 'mixtune.js');
  const out = mkdtempSync(join(tmpdir(), 'mixtune-nobwrap-'));
  const responses = join(out, 'r.jsonl');
  writeFileSync(responses, '{"task_id": "HumanEval/0", "completion": "    return False\\n"}\n');
  const env = { ...process.env, MIXTUNE_BWRAP: '/nonexistent/bwrap' };
  const args = ['eval', 'humaneval', '--responses', responses, '--limit', '1', '--no-progress'];
  const refused = spawnSync(process.execPath, [bin, ...args, '--out', join(out, 'a')], { env, encoding: 'utf8' });
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, /^mixtune: code evaluation needs the bubblewrap sandbox \(bwrap\) and it does not work here \(bwrap is not installed\).*--unsafe-no-sandbox/);
  const unsafe = spawnSync(process.execPath, [bin, ...args, '--out', join(out, 'b'), '--unsafe-no-sandbox'], { env, encoding: 'utf8' });
  assert.equal(unsafe.status, 0, unsafe.stderr);
  assert.equal(JSON.parse(readFileSync(join(out, 'b', 'summary.json'), 'utf8')).isolation.sandbox, 'unsafe');
});
