# A small stand-in for the parts of pytest that generated tests commonly use.
import math


class SkipTest(Exception):
    pass


def skip(reason=""):
    raise SkipTest(reason)


def fail(msg=""):
    raise AssertionError(msg)


class _Raises:
    def __init__(self, expected, match=None):
        self.expected = expected
        self.match = match
        self.value = None

    def __enter__(self):
        return self

    def __exit__(self, typ, val, tb):
        if typ is None:
            raise AssertionError("DID NOT RAISE %r" % (self.expected,))
        if not issubclass(typ, self.expected):
            return False
        if self.match is not None:
            import re
            if not re.search(self.match, str(val)):
                raise AssertionError("pattern %r not found in %r" % (self.match, str(val)))
        self.value = val
        return True


def raises(expected, *args, match=None, **kwargs):
    r = _Raises(expected, match)
    if args:
        with r:
            args[0](*args[1:], **kwargs)
        return r
    return r


class _Approx:
    def __init__(self, expected, rel=None, abs=None):
        self.expected, self.rel, self.abs = expected, rel, abs

    def _close(self, a, b):
        rel = 1e-6 if self.rel is None else self.rel
        ab = 1e-12 if self.abs is None else self.abs
        return math.isclose(a, b, rel_tol=rel, abs_tol=ab)

    def __eq__(self, other):
        e = self.expected
        if isinstance(e, (list, tuple)):
            return len(e) == len(other) and all(self._close(x, y) for x, y in zip(other, e))
        if isinstance(e, dict):
            return e.keys() == other.keys() and all(self._close(other[k], e[k]) for k in e)
        return self._close(other, e)

    def __repr__(self):
        return "approx(%r)" % (self.expected,)


def approx(expected, rel=None, abs=None):
    return _Approx(expected, rel, abs)


def fixture(*args, **kwargs):
    def mark(fn):
        fn._is_fixture = True
        return fn
    if args and callable(args[0]):
        return mark(args[0])
    return mark


class _Mark:
    def parametrize(self, names, values, **kwargs):
        def deco(fn):
            fn.__dict__.setdefault("_parametrize", []).append((names, list(values)))
            return fn
        return deco

    def skip(self, *args, reason="", **kwargs):
        if args and callable(args[0]):
            args[0]._skip = reason
            return args[0]

        def deco(fn):
            fn._skip = reason or (args[0] if args else "")
            return fn
        return deco

    def skipif(self, condition, *args, reason="", **kwargs):
        def deco(fn):
            if condition:
                fn._skip = reason
            return fn
        return deco

    def __getattr__(self, name):
        def deco(*args, **kwargs):
            if args and callable(args[0]) and len(args) == 1:
                return args[0]
            return lambda fn: fn
        return deco


mark = _Mark()
