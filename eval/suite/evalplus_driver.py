# Scores one answer of an EvalPlus-style task inside the sandbox.
# Files in the work dir: spec.json {entry_point, atol, compare, base, plus},
# canonical.py, candidate.py. Prints one JSON line:
# {"sanitized": bool, "base": {"pass", "error"}, "plus": {"pass", "error"}}.
import ast, copy, io, json, math, os, signal, sys, time

def non_finite(obj):
    # The loader encodes NaN and the infinities as {"__float__": ...}.
    if len(obj) == 1 and "__float__" in obj:
        return float(obj["__float__"])
    return obj


spec = json.load(open("spec.json"), object_hook=non_finite)
entry = spec["entry_point"]
out_fd = os.dup(1)


def report(result):
    os.write(out_fd, (json.dumps(result) + "\n").encode())
    os._exit(0)


class Timeout(Exception):
    pass


def on_alarm(signum, frame):
    raise Timeout()


signal.signal(signal.SIGALRM, on_alarm)


def as_tuples(x):
    return tuple(as_tuples(v) for v in x) if isinstance(x, list) else x


# Input decodings: JSON has no tuples, sets or complex numbers, so MBPP+
# tasks whose functions take them name how their arguments are rebuilt.
DECODE = {
    "tuple-args": lambda a: [tuple(v) for v in a],
    "tuple-lists": lambda a: [[tuple(v) for v in arg] for arg in a],
    "tuple-list-first": lambda a: [[tuple(v) for v in a[0]]] + a[1:],
    "tuple-second": lambda a: [a[0], tuple(a[1])] + a[2:],
    "tuple-first": lambda a: [tuple(a[0])] + a[1:],
    "set-list-first": lambda a: [[set(v) if isinstance(v, list) and v else {} for v in a[0]]] + a[1:],
    "float-complex": lambda a: [float(a[0]), complex(a[1])],
    "complex": lambda a: [complex(a[0])],
    "tuple-lists-args": lambda a: [tuple(tuple(v) for v in arg) for arg in a],
    "tuple-mixed-first": lambda a: [tuple(tuple(v) if isinstance(v, list) else v for v in a[0])] + [tuple(v) for v in a[1:]],
    "dict-tuple-values": lambda a: [{k: tuple(v) for k, v in a[0].items()}] + a[1:],
    "tuples-deep": lambda a: list(as_tuples(a)),
}


def sanitize(src):
    """Keep what a program needs to define the entry point: imports,
    function and class definitions, and top-level assignments; drop calls,
    prints, asserts and `if __name__` blocks. A syntax error at the end
    (a cut-off answer) is dropped line by line."""
    lines = src.split("\n")
    tree = None
    while lines:
        try:
            tree = ast.parse("\n".join(lines))
            break
        except SyntaxError:
            lines.pop()
    if tree is None:
        return None
    keep = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
            ast.Assign, ast.AnnAssign)
    tree.body = [n for n in tree.body if isinstance(n, keep)]
    return ast.unparse(tree)


def load(src, what):
    g = {"__name__": what}
    sys.stdout, sys.stderr = io.StringIO(), io.StringIO()
    try:
        exec(compile(src, what + ".py", "exec"), g)
    finally:
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    fn = g.get(entry)
    if not callable(fn):
        raise NameError("%s does not define %s" % (what, entry))
    return fn


def call(fn, args, limit):
    sys.stdout, sys.stderr = io.StringIO(), io.StringIO()
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        return fn(*copy.deepcopy(args))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__


def is_floats(x):
    if isinstance(x, float):
        return True
    if isinstance(x, (list, tuple)) and x:
        return all(isinstance(v, float) for v in x)
    return False


def close(a, b, atol):
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(close(x, y, atol) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return abs(a - b) <= atol + 1e-7 * abs(b)
    return a == b


def poly(xs, x):
    return sum(c * math.pow(x, i) for i, c in enumerate(xs))


def same(args, out, exp):
    cmp = spec.get("compare", "")
    atol = spec.get("atol") or 0
    if cmp == "poly":
        return isinstance(out, (int, float)) and abs(poly(args[0], out)) <= max(atol, 1e-6)
    if cmp == "set":
        try:
            return set(out) == set(exp)
        except TypeError:
            return False
    if cmp == "truthy":
        return bool(out) == bool(exp)
    if out == exp:
        return True
    if atol == 0 and is_floats(exp):
        atol = 1e-6
    return atol != 0 and close(out, exp, atol)


def main():
    canonical = load(open("canonical.py").read(), "canonical")
    groups = {}
    decode = DECODE.get(spec.get("decode") or "", lambda a: a)
    for name in ("base", "plus"):
        cases = []
        for args in spec.get(name) or []:
            args = decode(args)
            t0 = time.perf_counter()
            exp = call(canonical, args, 60)
            cases.append((args, exp, time.perf_counter() - t0))
        groups[name] = cases
    src = sanitize(open("candidate.py").read())
    result = {"sanitized": src is not None}
    try:
        if src is None:
            raise SyntaxError("no parsable Python in the answer")
        fn = load(src, "candidate")
    except BaseException as e:
        err = "load: %s: %s" % (type(e).__name__, str(e)[:200])
        report({"sanitized": src is not None, "base": {"pass": False, "error": err}, "plus": {"pass": False, "error": err}})
    failed = None
    for name in ("base", "plus"):
        if failed is None:
            for i, (args, exp, t) in enumerate(groups[name]):
                try:
                    out = call(fn, args, max(1.0, 4 * t))
                    ok = same(args, out, exp)
                    why = "wrong output"
                except Timeout:
                    ok, why = False, "timeout"
                except BaseException as e:
                    ok, why = False, "%s: %s" % (type(e).__name__, str(e)[:200])
                if not ok:
                    failed = "%s input %d: %s" % (name, i, why)
                    break
        result[name] = {"pass": failed is None, "error": failed or ""}
    report(result)


main()
