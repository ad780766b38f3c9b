#!/usr/bin/env python3
"""The layers of the source tree, as the design draws them.

- scheduler/core/ includes only the C library and itself: every decision
  is pure, time passed in;
- sender/ includes nothing of scheduler/ (it has its own route
  description, sender/route.h);
- no file includes itself through others: the graph of "..." includes
  between the project's files has no cycle.
"""
import os
import re
import sys
import unittest

SRC = os.environ["WU_SOURCE_ROOT"]
DIRS = ["scheduler", "sender", "tools"]
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)
LIBC = {
    "assert.h", "ctype.h", "errno.h", "float.h", "inttypes.h", "limits.h", "math.h",
    "stdarg.h", "stdbool.h", "stddef.h", "stdint.h", "stdio.h", "stdlib.h", "string.h",
    "strings.h", "time.h",
}


def sources():
    for top in DIRS:
        for dirpath, _, names in os.walk(os.path.join(SRC, top)):
            for n in sorted(names):
                if n.endswith((".c", ".h")):
                    yield os.path.relpath(os.path.join(dirpath, n), SRC)


def includes(path):
    with open(os.path.join(SRC, path), errors="replace") as f:
        return INCLUDE.findall(f.read())


def resolve(path, name):
    """The project file a quoted include names, or None (a system header)."""
    for base in (os.path.dirname(path), "", "scheduler", "scheduler/core", "sender"):
        cand = os.path.normpath(os.path.join(base, name))
        if os.path.isfile(os.path.join(SRC, cand)):
            return cand
    return None


class Layers(unittest.TestCase):
    def test_core_is_libc_only(self):
        bad = []
        for p in sources():
            if not p.startswith("scheduler/core/"):
                continue
            for kind, name in includes(p):
                target = resolve(p, name) if kind == '"' else None
                if kind == "<" and name not in LIBC:
                    bad.append(f"{p}: <{name}>")
                elif kind == '"' and (target is None or not target.startswith("scheduler/core/")):
                    bad.append(f'{p}: "{name}"')
        self.assertEqual(bad, [], "core files including more than libc and the core")

    def test_sender_knows_no_scheduler(self):
        bad = []
        for p in sources():
            if not p.startswith("sender/"):
                continue
            for kind, name in includes(p):
                target = resolve(p, name) if kind == '"' else None
                if kind == '"' and target is not None and not target.startswith("sender/"):
                    bad.append(f'{p}: "{name}" ({target})')
        self.assertEqual(bad, [], "sender files including the scheduler")

    def test_no_circular_includes(self):
        graph = {}
        for p in sources():
            graph[p] = [t for k, n in includes(p) if k == '"' for t in [resolve(p, n)] if t]
        state, cycles = {}, []

        def visit(n, stack):
            state[n] = 1
            stack.append(n)
            for m in graph.get(n, []):
                if state.get(m) == 1:
                    cycles.append(" -> ".join(stack[stack.index(m):] + [m]))
                elif m not in state:
                    visit(m, stack)
            stack.pop()
            state[n] = 2

        for n in sorted(graph):
            if n not in state:
                visit(n, [])
        self.assertEqual(cycles, [])


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1] + sys.argv[1:])
