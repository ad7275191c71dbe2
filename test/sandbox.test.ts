// Issue 18 (kernel isolation and evaluator robustness): programs that get past the Python-level
// guards still cannot leave processes or files behind, reach the network or the host's sockets,
// write outside their folder, see another task's folder, or make the evaluator fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { probeIsolation, runPool, runPython } from '../src/eval/code.js';
import { packageRoot } from '../src/util/paths.js';

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
  for (const d of [tmpdir(), '/var/tmp', '/dev/shm', join(packageRoot(), 'dist')]) assert.ok(!existsSync(join(d, tag)), `${d}/${tag} leaked to the host`);
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
