"""The check helpers the client scripts (sdk_resources.py, cli_resources.py)
share: one line per check, failures collected, fail-fast unless
--keep-going."""


class Abort(Exception):
    """Raised in fail-fast mode to stop the whole run."""


class Tally:
    keep_going = False
    failures = []
    passes = 0


def ok(cond, what, detail=None):
    if cond:
        Tally.passes += 1
        print(f'PASS {what}', flush=True)
        return True
    msg = what if detail is None else f'{what}: {detail}'
    print(f'FAIL {msg}', flush=True)
    Tally.failures.append(msg)
    if not Tally.keep_going:
        raise Abort(msg)
    return False


def eq(actual, expected, what):
    return ok(actual == expected, what, f'expected {expected!r}, got {actual!r}')
