// Sandboxed execution of generated Python for MBPP / HumanEval pass@1.
//
// Isolation (`bwrap`, Debian's bubblewrap; the default, and required unless the user passes
// --unsafe-no-sandbox): every program runs in fresh user, PID, mount, IPC, UTS, cgroup and network
// namespaces (`--unshare-all --die-with-parent --new-session`) as uid/gid 65534 from the start;
// the root filesystem is read-only, /tmp, /var/tmp, /dev/shm, /run, /root and /home are private
// empty tmpfs, the program and the preamble are a read-only bind of a folder the parent wrote, and
// the only writable place is the task's own empty work folder (each task has its own folders,
// mode 0700, that no other task sees). All descendants die with the task (PID namespace). There is
// no network (a new network namespace: no interfaces up, no abstract AF_UNIX sockets of the host).
//
// Without bwrap (`--unsafe-no-sandbox`, reported in the summary) the old, weaker isolation below
// is all there is. In both modes every program runs in its own child `python3 -I -B` process:
// - a fresh temporary working folder (mkdtemp; removed afterwards), HOME/TMPDIR pointing there,
//   a minimal environment (PATH, LANG, PYTHONHASHSEED=0);
// - stdin: the runner writes one line (a random per-run nonce) and closes the pipe; the preamble
//   reads it and then points fd 0 at /dev/null, so the program sees an empty stdin;
// - limits (resource.setrlimit in the preamble): RLIMIT_AS (address space, default 1 GiB),
//   RLIMIT_CPU (the time limit + 1 s), RLIMIT_FSIZE (16 MiB per written file), RLIMIT_CORE 0;
//   a wall-clock limit enforced by the runner, which SIGKILLs the whole process group (the child
//   is started detached = its own process group) on timeout; stdout+stderr are capped (the
//   process is killed when it prints more than maxOutputBytes) and only the first 4 KiB are kept;
// - no network: when available the child runs in a new network namespace (`unshare -n`, or
//   `unshare -rn` = also a user namespace for non-root users) that only has a down loopback
//   device; in every case the preamble replaces socket.socket / _socket.socket with classes that
//   raise PermissionError;
// - a reliability guard like human-eval's (execution.py): os.fork/forkpty/system/exec*/spawn*/kill/setsid
//   (in both os and posix), subprocess.Popen, _posixsubprocess.fork_exec,
//   file removal/renaming/chmod/chown, shutil.rmtree/move, ctypes, multiprocessing are disabled;
// - when the evaluator runs as root (and no user namespace is used), the preamble drops to uid/gid
//   65534 (nobody) after reading the program, and RLIMIT_NPROC is set to 64.
// This is isolation against accidents of generated code, not a security boundary against an
// adversary: the program can still read world-readable files and use CPU up to the limits.
//
// A program passes only if it exits with code 0 AND the preamble printed the nonce after the
// program's last statement (the tests) finished; the nonce is unknown to the program, so a
// program that calls sys.exit(0) / os._exit(0) before the tests, or dies, does not pass.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MixtuneError } from '../util/errors.js';
import { RESULTS_MARKER, VERDICT_PY, runnerProgram } from './verdict.py.js';

const PREAMBLE = String.raw`
import os, sys, resource
_nonce = sys.stdin.readline().strip()
_fd = os.open(os.devnull, os.O_RDONLY)
os.dup2(_fd, 0)
os.close(_fd)
_mem, _cpu, _fsize, _uid = (int(a) for a in sys.argv[1:5])
_prog = sys.argv[5]
if _mem > 0:
    resource.setrlimit(resource.RLIMIT_AS, (_mem, _mem))
    try:
        resource.setrlimit(resource.RLIMIT_DATA, (_mem, _mem))
    except (ValueError, OSError):
        pass
resource.setrlimit(resource.RLIMIT_CPU, (_cpu, _cpu + 1))
resource.setrlimit(resource.RLIMIT_FSIZE, (_fsize, _fsize))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
with open(_prog, encoding='utf-8') as _f:
    _src = _f.read()
if _uid >= 0:
    os.setgroups([])
    os.setgid(_uid)
    os.setuid(_uid)
    resource.setrlimit(resource.RLIMIT_NPROC, (64, 64))
import builtins, posix, socket, _socket, shutil, subprocess, _posixsubprocess, faulthandler
faulthandler.disable()
class _NoSocket(socket.socket):
    def __init__(self, *a, **k):
        raise PermissionError('network access is disabled in the mixtune sandbox')
class _NoRawSocket(_socket.socket):
    def __init__(self, *a, **k):
        raise PermissionError('network access is disabled in the mixtune sandbox')
def _denied(*a, **k):
    raise PermissionError('disabled in the mixtune sandbox')
socket.socket = _NoSocket
_socket.socket = _NoRawSocket
socket.SocketType = _NoSocket
for _n in ('create_connection', 'create_server', 'socketpair', 'fromfd', 'getaddrinfo', 'gethostbyname'):
    setattr(socket, _n, _denied)
for _n in ('fork', 'forkpty', 'system', 'popen', 'kill', 'killpg', 'putenv', 'remove', 'removedirs', 'rmdir',
           'fchdir', 'setuid', 'setgid', 'rename', 'renames', 'truncate', 'replace', 'unlink', 'fchmod', 'fchown',
           'chmod', 'chown', 'chroot', 'lchown', 'execv', 'execve', 'execl', 'execle', 'execlp', 'execlpe', 'execvp',
           'execvpe', 'spawnl', 'spawnle', 'spawnlp', 'spawnlpe', 'spawnv', 'spawnve', 'spawnvp', 'spawnvpe',
           'posix_spawn', 'posix_spawnp', 'setsid', 'setpgid', 'setpgrp'):
    for _mod in (os, posix):
        if hasattr(_mod, _n):
            setattr(_mod, _n, _denied)
_posixsubprocess.fork_exec = _denied
shutil.rmtree = _denied
shutil.move = _denied
shutil.chown = _denied
subprocess.Popen = _denied
subprocess.run = _denied
subprocess.call = _denied
subprocess.check_call = _denied
subprocess.check_output = _denied
for _m in ('ctypes', '_ctypes', '_posixsubprocess', 'multiprocessing', 'ipdb', 'joblib', 'psutil', 'tkinter'):
    sys.modules[_m] = None
_write = os.write
_code = compile(_src, 'prog.py', 'exec')
del _src, _f
_g = {'__name__': '__sandbox__', '__builtins__': builtins}
exec(_code, _g)
try:
    sys.stdout.flush()
    sys.stderr.flush()
except Exception:
    pass
_write(1, ('\n' + _nonce + '\n').encode())
`;

export type ExecStatus = 'passed' | 'failed' | 'timeout' | 'output-limit';

export interface ExecResult {
  status: ExecStatus;
  passed: boolean;
  exitCode: number | null;
  signal: string | null;
  /** Why it failed (exit code, "exited before the tests finished", last stderr line...). */
  reason: string;
  /** The first 4 KiB of stdout / stderr (the nonce line removed). */
  stdout: string;
  stderr: string;
  seconds: number;
  /** Function tests: 'outside' = decided by the trusted replay; 'in-sandbox' = by the program's own run (fallback). */
  verdict?: 'outside' | 'in-sandbox';
}

export interface SandboxOptions {
  /** Wall-clock limit in seconds (default 10). */
  timeoutS?: number;
  /** Address-space limit in MiB (default 1024; 0 = none). */
  memoryMB?: number;
  /** Kill the program when stdout+stderr exceed this many bytes (default 1 MiB). */
  maxOutputBytes?: number;
  /** python executable (default: $MIXTUNE_PYTHON or python3). */
  python?: string;
  /** Network namespace: 'auto' (use unshare when it works) or 'off' (preamble only). Unsafe mode only. */
  netns?: 'auto' | 'off';
  /** Run without bubblewrap (weak isolation) when bwrap is unavailable, instead of refusing. */
  unsafeNoSandbox?: boolean;
  /** Keep all of stdout (up to maxOutputBytes) instead of its first 4 KiB. */
  fullStdout?: boolean;
}

export interface Isolation {
  /** 'bwrap' (kernel namespaces, see the file comment) or 'unsafe' (--unsafe-no-sandbox). */
  sandbox: 'bwrap' | 'unsafe';
  /** Unsafe mode: 'unshare -n', 'unshare -rn' or 'none' (socket monkeypatch only). */
  netns: 'unshare -n' | 'unshare -rn' | 'none';
  /** uid the program runs as after the preamble drops privileges (-1: unchanged). */
  dropToUid: number;
  python: string;
  pythonVersion: string;
}

const isolationCache = new Map<string, Isolation>();

/** Probes (once per process) how programs will be isolated; throws MixtuneError when python3 is missing. */
export function probeIsolation(o?: SandboxOptions): Isolation {
  const python = o?.python ?? process.env.MIXTUNE_PYTHON ?? 'python3';
  const netnsWanted = o?.netns ?? 'auto';
  const key = `${python}\0${netnsWanted}\0${o?.unsafeNoSandbox ? 1 : 0}`;
  const cached = isolationCache.get(key);
  if (cached) return cached;
  const v = spawnSync(python, ['-c', 'import sys; print(sys.version.split()[0])'], { encoding: 'utf8', timeout: 20_000 });
  if (v.error || v.status !== 0) throw new MixtuneError(`${python}: cannot run Python (needed to execute generated code): ${v.error?.message ?? v.stderr.trim().split('\n').pop()}`);
  const bw = bwrapWorks(python);
  if (bw === true) {
    const iso: Isolation = { sandbox: 'bwrap', netns: 'none', dropToUid: -1, python, pythonVersion: v.stdout.trim() };
    isolationCache.set(key, iso);
    return iso;
  }
  if (!o?.unsafeNoSandbox) {
    throw new MixtuneError(`code evaluation needs the bubblewrap sandbox (bwrap) and it does not work here (${bw}); ` +
      'install it (Debian: apt-get install bubblewrap; user namespaces must be allowed), or pass --unsafe-no-sandbox to run generated code with weak, Python-level isolation');
  }
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  let netns: Isolation['netns'] = 'none';
  if (netnsWanted === 'auto') {
    const works = (args: string[]): boolean => {
      const r = spawnSync('unshare', [...args, python, '-c', 'import socket\ntry:\n socket.create_connection(("1.1.1.1", 53), timeout=1)\nexcept OSError:\n print("isolated")'], { encoding: 'utf8', timeout: 20_000 });
      return !r.error && r.status === 0 && r.stdout.trim() === 'isolated';
    };
    if (isRoot && works(['-n'])) netns = 'unshare -n';
    else if (works(['-rn'])) netns = 'unshare -rn';
  }
  const iso: Isolation = { sandbox: 'unsafe', netns, dropToUid: isRoot && netns !== 'unshare -rn' ? 65534 : -1, python, pythonVersion: v.stdout.trim() };
  isolationCache.set(key, iso);
  return iso;
}

/** true when bwrap can start python in the sandbox this file uses; else why not. */
function bwrapWorks(python: string): true | string {
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-bwrap-probe-'));
  try {
    const r = spawnSync(bwrapBin(), [...bwrapArgs(dir, dir), python, '-I', '-c', 'import os; print(os.getuid())'], { encoding: 'utf8', timeout: 20_000 });
    if (r.error) return (r.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'bwrap is not installed' : r.error.message;
    if (r.status !== 0) return (r.stderr.trim().split('\n').pop() ?? `exit ${r.status}`).slice(0, 200);
    return r.stdout.trim() === String(SANDBOX_UID) ? true : `unexpected uid ${r.stdout.trim()}`;
  } finally {
    removeTree(dir);
  }
}

/** The bubblewrap executable ($MIXTUNE_BWRAP, default bwrap on PATH). */
function bwrapBin(): string {
  return process.env.MIXTUNE_BWRAP ?? 'bwrap';
}

/** The uid / gid programs run as inside the sandbox. */
const SANDBOX_UID = 65534;

/**
 * bubblewrap arguments: `code` (read-only, holds sandbox.py and prog.py) appears at /tmp/task, `work`
 * (the only writable place) at /tmp/work, which is also the working and home folder.
 */
function bwrapArgs(code: string, work: string): string[] {
  return [
    '--unshare-all', '--die-with-parent', '--new-session',
    '--uid', String(SANDBOX_UID), '--gid', String(SANDBOX_UID),
    '--ro-bind', '/', '/',
    '--tmpfs', '/tmp', '--tmpfs', '/var/tmp', '--tmpfs', '/dev/shm', '--tmpfs', '/run', '--tmpfs', '/root', '--tmpfs', '/home',
    '--proc', '/proc', '--dev', '/dev',
    '--ro-bind', code, '/tmp/task',
    '--bind', work, '/tmp/work',
    '--chdir', '/tmp/work',
    '--clearenv',
    '--setenv', 'PATH', '/usr/local/bin:/usr/bin:/bin', '--setenv', 'LANG', 'C.UTF-8', '--setenv', 'LC_ALL', 'C.UTF-8',
    '--setenv', 'PYTHONHASHSEED', '0', '--setenv', 'HOME', '/tmp/work', '--setenv', 'TMPDIR', '/tmp/work', '--setenv', 'PYTHONIOENCODING', 'utf-8',
  ];
}

/**
 * Removes a task's folders; a task can leave things that resist (40 nested long names, a chmod 000
 * subfolder): that is logged and the evaluation goes on — the evaluator never dies of a task.
 */
export function removeTree(dir: string): void {
  try {
    rmSync(dir, { recursive: true, force: true, maxRetries: 2 });
  } catch (e) {
    try {
      // make every level writable and searchable, then retry
      spawnSync('chmod', ['-R', 'u+rwx', dir], { timeout: 20_000 });
      spawnSync('rm', ['-rf', '--', dir], { timeout: 60_000 });
    } catch {
      /* reported below */
    }
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      process.stderr.write(`mixtune: warning: could not remove ${dir} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); continuing\n`);
    }
  }
}

const KEEP = 4096;

/** Runs a Python program in the sandbox (see the file comment); never throws for program failures. */
export async function runPython(program: string, o?: SandboxOptions): Promise<ExecResult> {
  const iso = probeIsolation(o);
  const timeoutS = o?.timeoutS ?? 10;
  const memoryMB = o?.memoryMB ?? 1024;
  const maxOut = o?.maxOutputBytes ?? 1 << 20;
  // One folder per task (mkdtemp: 0700, no other task can read it): code/ is written here and
  // mounted read-only; work/ is the task's only writable place.
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-exec-'));
  const t0 = performance.now();
  try {
    const bw = iso.sandbox === 'bwrap';
    const codeDir = bw ? join(dir, 'code') : dir;
    const workDir = bw ? join(dir, 'work') : dir;
    if (bw) {
      mkdirSync(codeDir);
      mkdirSync(workDir);
    }
    writeFileSync(join(codeDir, 'prog.py'), program);
    writeFileSync(join(codeDir, 'sandbox.py'), PREAMBLE);
    if (bw) {
      chmodSync(join(codeDir, 'prog.py'), 0o444);
      chmodSync(join(codeDir, 'sandbox.py'), 0o444);
    } else if (iso.dropToUid >= 0) chownSync(dir, iso.dropToUid, iso.dropToUid);
    const nonce = `__mixtune_done_${randomBytes(16).toString('hex')}__`;
    const limits = [String(memoryMB * 1024 * 1024), String(Math.ceil(timeoutS) + 1), String(16 * 1024 * 1024)];
    let cmd: string;
    let args: string[];
    if (bw) [cmd, args] = [bwrapBin(), [...bwrapArgs(codeDir, workDir), iso.python, '-I', '-B', '/tmp/task/sandbox.py', ...limits, '-1', '/tmp/task/prog.py']];
    else {
      const pyArgs = ['-I', '-B', 'sandbox.py', ...limits, String(iso.dropToUid), 'prog.py'];
      [cmd, args] = iso.netns === 'none' ? [iso.python, pyArgs] : ['unshare', [...iso.netns.slice('unshare '.length).split(' '), iso.python, ...pyArgs]];
    }
    const env = { PATH: '/usr/local/bin:/usr/bin:/bin', LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8', PYTHONHASHSEED: '0', HOME: workDir, TMPDIR: workDir, PYTHONIOENCODING: 'utf-8' };
    return await new Promise<ExecResult>((resolve) => {
      const child = spawn(cmd, args, { cwd: bw ? dir : workDir, env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
      let out = Buffer.alloc(0);
      let err = Buffer.alloc(0);
      let tail = '';
      let total = 0;
      let killedFor: 'timeout' | 'output-limit' | null = null;
      const killGroup = (): void => {
        if (child.pid === undefined) return;
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      };
      const timer = setTimeout(() => {
        killedFor ??= 'timeout';
        killGroup();
      }, timeoutS * 1000);
      const onData = (which: 'out' | 'err') => (chunk: Buffer) => {
        total += chunk.length;
        if (which === 'out') {
          const keep = o?.fullStdout ? maxOut : KEEP;
          if (out.length < keep) out = Buffer.concat([out, chunk.subarray(0, keep - out.length)]);
          tail = (tail + chunk.toString('latin1')).slice(-256);
        } else if (err.length < KEEP) err = Buffer.concat([err, chunk.subarray(0, KEEP - err.length)]);
        if (total > maxOut && !killedFor) {
          killedFor = 'output-limit';
          killGroup();
        }
      };
      child.stdout.on('data', onData('out'));
      child.stderr.on('data', onData('err'));
      child.stdin.on('error', () => {}); // the child may exit before reading
      child.stdin.end(nonce + '\n');
      let settled = false;
      const finish = (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        killGroup(); // stray children of the program, if any escaped the guard
        const seconds = (performance.now() - t0) / 1000;
        const marker = tail.trimEnd().endsWith(nonce);
        const stdout = out.toString('utf8').replace(`\n${nonce}\n`, '').replace(nonce, '');
        const stderr = err.toString('utf8');
        const lastErr = stderr.trim().split('\n').pop() ?? '';
        let status: ExecStatus;
        let reason: string;
        if (spawnError) {
          status = 'failed';
          reason = `cannot start ${cmd}: ${spawnError.message}`;
        } else if (killedFor === 'timeout') {
          status = 'timeout';
          reason = `killed after the ${timeoutS} s time limit`;
        } else if (killedFor === 'output-limit') {
          status = 'output-limit';
          reason = `killed after printing more than ${maxOut} bytes`;
        } else if (code === 0 && marker) {
          status = 'passed';
          reason = '';
        } else {
          status = 'failed';
          if (signal) reason = `killed by ${signal}${signal === 'SIGXCPU' || signal === 'SIGKILL' ? ' (CPU time limit)' : ''}`;
          else if (code === 0) reason = 'exited with code 0 before the tests finished';
          else reason = lastErr !== '' ? lastErr.slice(0, 300) : `exit code ${code}`;
        }
        resolve({ status, passed: status === 'passed', exitCode: code, signal, reason, stdout, stderr, seconds });
      };
      child.on('error', (e) => finish(null, null, e));
      child.on('close', (code, signal) => finish(code, signal));
      // A grandchild that left the process group could keep the pipes open (no 'close'): after the
      // exit, wait briefly for the output, then stop reading.
      child.on('exit', (code, signal) => {
        killGroup();
        setTimeout(() => {
          child.stdout.destroy();
          child.stderr.destroy();
          finish(code, signal);
        }, 2000).unref();
      });
    });
  } finally {
    removeTree(dir);
  }
}

/** Runs `fn` over `items` with at most `jobs` in flight; results keep the input order. */
export async function runPool<T, R>(items: readonly T[], jobs: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(jobs, items.length)) }, worker));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Code extraction and program assembly

/**
 * The code in a completion: the first ```python (```py, ```Python3, or bare ```) fenced block
 * that defines `entryPoint` (when given), else the first block with a `def`, else the first block;
 * an unclosed fence (generation cut off) counts up to the end; MBPP's [BEGIN] ... [DONE] markers
 * are honoured; without fences, the whole completion.
 */
export function extractCode(completion: string, entryPoint?: string): string {
  let text = completion.replace(/\r\n/g, '\n');
  const begin = text.match(/\[BEGIN\]([\s\S]*?)(?:\[DONE\]|$)/);
  if (begin) text = begin[1]!;
  const blocks: string[] = [];
  const re = /```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n([\s\S]*?)(?:```|$)/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const lang = m[1]!.toLowerCase();
    if (lang === '' || lang.startsWith('py')) blocks.push(m[2]!);
    if (m[0].length === 0) re.lastIndex++;
  }
  if (blocks.length === 0) return text.replace(/^\n+/, '').replace(/\s+$/, '') + '\n';
  const defines = entryPoint ? blocks.find((b) => new RegExp(`\\bdef\\s+${entryPoint}\\s*\\(`).test(b)) : undefined;
  const pick = defines ?? blocks.find((b) => /\bdef\s+\w+\s*\(/.test(b)) ?? blocks[0]!;
  return pick.replace(/\s+$/, '') + '\n';
}

export interface MbppItem {
  task_id: number;
  text: string;
  code: string;
  test_list: string[];
  test_setup_code: string;
  challenge_test_list?: string[];
}

/** The MBPP test program: the solution, the setup code (it may use the solution's classes), the asserts. */
export function mbppProgram(item: MbppItem, solution: string): string {
  return [solution.replace(/\r\n/g, '\n'), item.test_setup_code.replace(/\r\n/g, '\n'), ...item.test_list.map((t) => t.replace(/\r\n/g, '\n'))].join('\n\n') + '\n';
}

export interface HumanEvalItem {
  task_id: string;
  prompt: string;
  canonical_solution: string;
  test: string;
  entry_point: string;
}

/**
 * The HumanEval test program for a completion: a body continuation (an indented first line, as
 * in human-eval's own samples format) is appended to the prompt; code that defines the entry point
 * follows the prompt (so the prompt's imports and helper functions stay defined and the new
 * definition wins); then the tests and check(entry_point).
 */
export function humanevalProgram(item: HumanEvalItem, completion: string): string {
  return `${humanevalSolution(item, completion)}\n\n${item.test}\n\ncheck(${item.entry_point})\n`;
}

/** The candidate's code for a HumanEval item: the prompt plus the completion (see humanevalProgram). */
export function humanevalSolution(item: HumanEvalItem, completion: string): string {
  const code = completion.replace(/\r\n/g, '\n');
  const firstLine = code.split('\n').find((l) => l.trim() !== '') ?? '';
  const body = /^[ \t]+\S/.test(firstLine) && !new RegExp(`\\bdef\\s+${item.entry_point}\\s*\\(`).test(code);
  return body ? item.prompt + code : item.prompt + '\n' + code;
}

/** The functions MBPP's tests call: the reference solution's top-level functions named in the asserts. */
export function mbppEntries(item: MbppItem): string[] {
  const defs = [...item.code.matchAll(/^def\s+(\w+)\s*\(/gm)].map((m) => m[1]!);
  const tests = item.test_list.join('\n') + '\n' + (item.test_setup_code ?? '');
  return defs.filter((d) => new RegExp(`\\b${d}\\s*\\(`).test(tests));
}

// ---------------------------------------------------------------------------------------------
// Verdicts decided outside the candidate (docs: src/eval/verdict.py.ts)

/**
 * `program`: the whole test program (solution + tests), for the few tasks whose tests cannot be run
 * without the solution (they build arguments from its classes); those run the old way, with the
 * verdict from inside the sandbox, and say so in `reason` / `verdict`.
 */
export interface FunctionTests {
  program: string;
  /** The candidate's code (it defines the tested functions). */
  solution: string;
  /** The task's test code: asserts calling the functions by name (MBPP), or `def check(candidate)` (HumanEval). */
  tests: string;
  /** The tested function names (the first one is passed to check()). */
  entries: string[];
  /** HumanEval: call check(entries[0]) after running the test code. */
  check: boolean;
}

function trustedPython(python: string, mode: 'probe' | 'replay', job: unknown): { ok: true; out: Record<string, unknown> } | { ok: false; why: string } {
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-verdict-'));
  try {
    const path = join(dir, 'job.json');
    writeFileSync(path, JSON.stringify(job));
    const r = spawnSync(python, ['-I', '-B', '-c', VERDICT_PY, mode, path], { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 << 20, cwd: dir, env: { PATH: '/usr/local/bin:/usr/bin:/bin', LANG: 'C.UTF-8' } });
    if (r.error || r.status !== 0) return { ok: false, why: `${mode}: ${r.error?.message ?? (r.stderr.trim().split('\n').pop() ?? `exit ${r.status}`)}`.slice(0, 300) };
    return { ok: true, out: JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown> };
  } finally {
    removeTree(dir);
  }
}

/**
 * Runs function tests so that the program under test never decides its verdict: the trusted side
 * records which calls the tests make, the sandbox computes only the candidate's results for them
 * (strictly serialized built-in values), and the trusted side replays the tests on those results.
 */
export async function runFunctionTests(t: FunctionTests, o?: SandboxOptions): Promise<ExecResult> {
  const iso = probeIsolation(o);
  const t0 = performance.now();
  const fail = (reason: string, base?: Partial<ExecResult>): ExecResult => ({
    status: 'failed', passed: false, exitCode: null, signal: null, stdout: '', stderr: '', seconds: (performance.now() - t0) / 1000, ...base, reason,
  });
  const probe = trustedPython(iso.python, 'probe', { entries: t.entries, tests: t.tests, check: t.check });
  if (!probe.ok) return fail(`the tests could not be probed (${probe.why})`);
  const unsupported = probe.out.unsupported as string[];
  if (t.entries.length === 0 || unsupported.length > 0) {
    // the tests cannot run apart from the solution: the whole program in the sandbox (weaker verdict)
    const r = await runPython(t.program, o);
    return { ...r, verdict: 'in-sandbox', reason: r.passed ? '' : r.reason };
  }
  const calls = probe.out.calls as unknown[];
  const r = await runPython(runnerProgram(t.solution, calls), { ...o, fullStdout: true });
  if (r.status === 'timeout' || r.status === 'output-limit') return { ...r, passed: false };
  const at = r.stdout.lastIndexOf(RESULTS_MARKER);
  if (at < 0) return fail(r.reason || 'the program ended before its results were written', r);
  let results: unknown;
  try {
    results = JSON.parse(r.stdout.slice(at + RESULTS_MARKER.length).split('\n')[0]!);
  } catch {
    return fail('malformed results', r);
  }
  const verdict = trustedPython(iso.python, 'replay', { entries: t.entries, tests: t.tests, check: t.check, results });
  if (!verdict.ok) return fail(verdict.why, r);
  const passed = verdict.out.passed === true;
  return { ...r, status: passed ? 'passed' : 'failed', passed, reason: passed ? '' : String(verdict.out.reason ?? 'failed'), verdict: 'outside' };
}
