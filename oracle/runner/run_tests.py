# Runs the pytest-style tests of the correctness oracle without pytest.
# Layout in the sandbox work dir: solution.py (the response's code),
# test_solution.py (the row's tests), pytest.py (a small shim).
# The solution is executed first, then the tests in the same namespace, so
# tests may use the solution's names directly or import them from solution.
# Exit status: 0 all passed, 1 a test failed, 2 the solution or the tests
# failed to load, 3 no tests were found.
import inspect
import sys
import traceback

import pytest


def load(path, ns):
    with open(path) as f:
        src = f.read()
    exec(compile(src, path, "exec"), ns)


def collect(ns, before):
    tests = []
    for name, obj in list(ns.items()):
        if before.get(name) is obj:
            continue  # defined by the solution, not by the tests
        if name.startswith("test") and inspect.isfunction(obj):
            tests.append((name, obj))
        elif name.startswith("Test") and inspect.isclass(obj):
            for mname, m in vars(obj).items():
                if mname.startswith("test") and inspect.isfunction(m):
                    tests.append((name + "." + mname, getattr(obj(), mname)))
    return tests


def expand(fn):
    """Yields (suffix, kwargs) for each parametrize combination."""
    cases = [("", {})]
    for names, values in reversed(getattr(fn, "_parametrize", [])):
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",") if n.strip()]
        new = []
        for suffix, kw in cases:
            for i, v in enumerate(values):
                vals = v if len(names) > 1 else (v,)
                k = dict(kw)
                k.update(zip(names, vals))
                new.append((suffix + "[%d]" % i, k))
        cases = new
    return cases


def call(fn, kwargs, ns):
    skip_reason = getattr(fn, "_skip", None)
    if skip_reason is not None:
        raise pytest.SkipTest(skip_reason)
    params = inspect.signature(fn).parameters
    finalizers = []
    for p in params:
        if p in kwargs:
            continue
        fix = ns.get(p)
        if fix is None or not getattr(fix, "_is_fixture", False):
            raise TypeError("unsupported fixture %r" % p)
        val = fix()
        if inspect.isgenerator(val):
            finalizers.append(val)
            val = next(val)
        kwargs[p] = val
    try:
        fn(**kwargs)
    finally:
        for g in finalizers:
            for _ in g:
                pass


def main():
    ns = {"__name__": "test_solution", "__file__": "test_solution.py"}
    before = {}
    for path in ("solution.py", "test_solution.py"):
        before = dict(ns)
        try:
            load(path, ns)
        except pytest.SkipTest as e:
            print("SKIPPED module:", e)
            return 3
        except BaseException:
            print("ERROR loading %s" % path)
            traceback.print_exc(file=sys.stdout)
            return 2
    tests = collect(ns, before)
    passed = failed = skipped = 0
    for name, fn in tests:
        for suffix, kwargs in expand(fn):
            try:
                call(fn, dict(kwargs), ns)
                passed += 1
                print("PASSED", name + suffix)
            except pytest.SkipTest as e:
                skipped += 1
                print("SKIPPED", name + suffix, e)
            except BaseException:
                failed += 1
                print("FAILED", name + suffix)
                traceback.print_exc(file=sys.stdout)
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    if failed:
        return 1
    if passed == 0:
        print("no tests ran")
        return 3
    return 0


if __name__ == "__main__":
    sys.stdout.flush()
    code = main()
    sys.stdout.flush()
    sys.exit(code)
