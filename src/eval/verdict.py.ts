// The trusted half of code evaluation (issue 18, item 1): Python that runs WITHOUT the candidate's
// code, outside the sandbox. `probe` executes the task's test code against a recorder in place of
// the candidate function (asserts softened so every call is reached) and prints the argument
// tuples of the calls; the sandboxed program then only computes the candidate's results for those
// arguments; `replay` runs the original test code with a replayer that returns those results (in
// order, checking the arguments match) and decides the verdict here. Expected values never enter
// the sandbox, and results cross the boundary only as strictly serialized built-in values, so an
// object whose __eq__ is always True cannot come back.
export const VERDICT_PY = String.raw`
import ast, json, math, random, sys

_TYPES = {t.__name__: t for t in (int, float, complex, str, bytes, bool, list, tuple, dict, set, frozenset, type(None))}

def enc(x, depth=0):
    """Built-in values only, read through the base types' own methods (a subclass's overrides —
    an always-True __eq__ — do not cross: the trusted side rebuilds plain values)."""
    if depth > 64:
        raise TypeError('nested too deeply')
    if x is None: return None
    if isinstance(x, bool): return {'b': bool(x)}
    if isinstance(x, int): return {'i': int.__repr__(x)}
    if isinstance(x, float): return {'f': float.__repr__(x)}
    if isinstance(x, complex): return {'c': [float.__repr__(complex.real.__get__(x)), float.__repr__(complex.imag.__get__(x))]}
    if isinstance(x, str): return {'s': str.__str__(x)}
    if isinstance(x, bytes): return {'y': bytes.hex(x)}
    if isinstance(x, tuple): return {'t': [enc(v, depth + 1) for v in tuple.__iter__(x)]}
    if isinstance(x, list): return {'l': [enc(v, depth + 1) for v in list.__iter__(x)]}
    if isinstance(x, dict): return {'d': [[enc(k, depth + 1), enc(v, depth + 1)] for k, v in dict.items(x)]}
    if isinstance(x, frozenset): return {'F': [enc(v, depth + 1) for v in frozenset.__iter__(x)]}
    if isinstance(x, set): return {'S': [enc(v, depth + 1) for v in set.__iter__(x)]}
    if isinstance(x, type) and _TYPES.get(x.__name__) is x: return {'T': x.__name__}
    raise TypeError('cannot serialize a value of type ' + type(x).__name__)

def dec(o):
    if o is None: return None
    (k, v), = o.items()
    if k == 'b': return bool(v)
    if k == 'i': return int(v)
    if k == 'f': return float(v)
    if k == 'c': return complex(float(v[0]), float(v[1]))
    if k == 's': return str(v)
    if k == 'y': return bytes.fromhex(v)
    if k == 'l': return [dec(x) for x in v]
    if k == 't': return tuple(dec(x) for x in v)
    if k == 'd': return {dec(a): dec(b) for a, b in v}
    if k == 'S': return set(dec(x) for x in v)
    if k == 'F': return frozenset(dec(x) for x in v)
    if k == 'T': return _TYPES[v]
    raise ValueError('bad tag ' + k)

class Hole:
    """What the recorder returns: a permissive stand-in, so a probe reaches every call of an assert
    (tuple(f(x)) == tuple(g(x)) must record both calls); its comparisons are False."""
    def __getattr__(self, n): return Hole()
    def __call__(self, *a, **k): return Hole()
    def __getitem__(self, k): return Hole()
    def __iter__(self): return iter(())
    def __len__(self): return 0
    def __bool__(self): return False
    def __eq__(self, o): return False
    def __ne__(self, o): return True
    def __lt__(self, o): return False
    __le__ = __gt__ = __ge__ = __lt__
    def __hash__(self): return 0
    def __int__(self): return 0
    def __index__(self): return 0
    def __float__(self): return 0.0
    def __str__(self): return ''
    def _h(self, *a): return Hole()
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _h
    __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = __pow__ = __rpow__ = __neg__ = __abs__ = _h
    __and__ = __or__ = __xor__ = __rand__ = __ror__ = __rxor__ = _h

class _Soft(Exception):
    pass

class Soften(ast.NodeTransformer):
    """assert X  ->  try: X  except BaseException: pass  (the probe must reach every call)."""
    def visit_Assert(self, node):
        # a NameError means the tests need something only the solution defines: not softened
        reraise = ast.ExceptHandler(type=ast.Name(id='NameError', ctx=ast.Load()), name=None, body=[ast.Raise()])
        swallow = ast.ExceptHandler(type=ast.Name(id='BaseException', ctx=ast.Load()), name=None, body=[ast.Pass()])
        return ast.copy_location(ast.Try(body=[ast.Expr(value=node.test)], handlers=[reraise, swallow], orelse=[], finalbody=[]), node)

def run_tests(src, entries, make, soften, check):
    tree = ast.parse(src)
    if soften:
        tree = ast.fix_missing_locations(Soften().visit(tree))
    # names the tests commonly use without importing them (the solution's imports, in the old harness)
    import collections, heapq, itertools, re, string
    g = {'__name__': '__main__', 'sys': sys, 'math': math, 're': re, 'collections': collections, 'heapq': heapq, 'itertools': itertools, 'string': string}
    for e in entries:
        g[e] = make(e)
    random.seed(1234)
    exec(compile(tree, 'tests.py', 'exec'), g)
    if check:
        for e in entries:
            g[e] = make(e)
        random.seed(1234)
        g['check'](g[entries[0]])

def main():
    mode, path = sys.argv[1], sys.argv[2]
    job = json.load(open(path, encoding='utf-8'))
    entries, src, check = job['entries'], job['tests'], job['check']
    if mode == 'probe':
        calls = []
        unsupported = []
        def make(name):
            def rec(*args, **kw):
                try:
                    if kw:
                        raise TypeError('keyword arguments')
                    calls.append({'fn': name, 'args': enc(list(args))})
                except TypeError as e:
                    unsupported.append(name + ': ' + str(e))
                return Hole()
            return rec
        try:
            run_tests(src, entries, make, True, check)
        except BaseException as e:
            unsupported.append('the tests need the solution to run (' + type(e).__name__ + ': ' + str(e)[:120] + ')')
        print(json.dumps({'calls': calls, 'unsupported': unsupported[:3]}))
        return
    results = job['results']
    pos = [0]
    def make(name):
        def replay(*args, **kw):
            i = pos[0]
            if kw or i >= len(results) or results[i]['fn'] != name or results[i]['args'] != enc(list(args)):
                raise AssertionError('the tests called the function differently than the sandbox did (call %d)' % (i + 1))
            pos[0] += 1
            r = results[i]
            if 'error' in r:
                raise RuntimeError('the function raised ' + r['error'])
            return dec(r['value'])
        return replay
    try:
        run_tests(src, entries, make, False, check)
    except BaseException as e:
        print(json.dumps({'passed': False, 'reason': (type(e).__name__ + ': ' + str(e))[:300]}))
        return
    print(json.dumps({'passed': True, 'reason': ''}))

main()
`;

/**
 * The sandboxed half: the candidate's code runs, then its function is called on every recorded
 * argument tuple; each result (or the exception type) is printed as one strictly serialized JSON
 * line after a marker. The candidate controls this process entirely — it can print anything — but
 * it never sees an expected value, so it can only answer, not look answers up.
 */
export function runnerProgram(solution: string, calls: unknown[]): string {
  return `import json, sys\n` + VERDICT_PY.split('class Hole')[0].replace('import ast, json, math, random, sys', '') + `
_calls = json.loads(${JSON.stringify(JSON.stringify(calls))})
_g = {'__name__': '__main__'}
exec(compile(${JSON.stringify(solution)}, 'solution.py', 'exec'), _g)
_out = []
for _c in _calls:
    try:
        _fn = _g.get(_c['fn'])
        if _fn is None:
            raise NameError(_c['fn'] + ' is not defined')
        _v = _fn(*dec(_c['args']))
        _out.append({'fn': _c['fn'], 'args': _c['args'], 'value': enc(_v)})
    except BaseException as _e:
        _out.append({'fn': _c['fn'], 'args': _c['args'], 'error': type(_e).__name__})
sys.stdout.write('\\n${RESULTS_MARKER}' + json.dumps(_out) + '\\n')
sys.stdout.flush()
`;
}

export const RESULTS_MARKER = '@@mixtune-results@@';
