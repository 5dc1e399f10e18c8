#!/usr/bin/env python3
"""Module boundaries, checked on the include lines of src/ and include/.

- A file in src/MODULE/ includes private headers of its own module only
  ("MODULE/x.h"); what it needs of another module comes through that module's
  public header under include/cepheus/.
- A public header (include/cepheus/...) includes public headers only, and
  none of the libraries a module keeps to itself: simdjson, robin-map,
  Spirit, librdkafka, LMDB, prometheus-cpp, yaml-cpp (their types stay
  behind a pointer to implementation). Two header-only Boost pieces are the
  nfa module's value types and are allowed: intrusive_ptr (EventRef) and
  small_vector (a key's runs).
- No includes run in a circle.

    check_includes.py ROOT      exit 1 with one line per violation
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
SYSTEM_INCLUDE = re.compile(r'^\s*#\s*include\s+<([^>]+)>')
PRIVATE_LIBRARIES = ("simdjson", "tsl/", "boost/spirit", "librdkafka/", "rdkafka", "lmdb", "prometheus/",
                     "yaml-cpp/")


def main(root):
    src = os.path.join(root, "src")
    pub = os.path.join(root, "include")
    modules = {d for d in os.listdir(src) if os.path.isdir(os.path.join(src, d))}
    files = {}  # include path as written ("nfa/eval.h", "cepheus/nfa/program.h") -> file
    sources = []
    for base, tree in ((src, "src"), (pub, "include")):
        for dirpath, _, names in os.walk(base):
            for n in names:
                if not n.endswith((".h", ".cc")):
                    continue
                path = os.path.join(dirpath, n)
                rel = os.path.relpath(path, base)
                sources.append((tree, rel, path))
                if n.endswith(".h"):
                    files[rel] = path
    problems = []
    graph = {}
    for tree, rel, path in sources:
        text = open(path, encoding="utf-8").read()
        deps = []
        for lineno, line in enumerate(text.splitlines(), 1):
            lib = SYSTEM_INCLUDE.match(line)
            if tree == "include" and lib and lib.group(1).startswith(PRIVATE_LIBRARIES):
                problems.append(f"{tree}/{rel}:{lineno}: public header includes <{lib.group(1)}>")
            m = INCLUDE.match(line)
            if not m:
                continue
            inc = m.group(1)
            where = f"{tree}/{rel}:{lineno}"
            first = inc.split("/")[0]
            if tree == "include":
                if first != "cepheus":
                    problems.append(f"{where}: public header includes private \"{inc}\"")
            else:
                own = rel.split("/")[0]
                if first in modules and first != own:
                    problems.append(f"{where}: module {own} includes {first}'s private header \"{inc}\"")
            if inc in files:
                deps.append(inc)
        if rel.endswith(".h"):
            graph[rel] = deps
    # Cycles: depth-first search with colours.
    state = {}
    stack = []

    def visit(h):
        state[h] = 1
        stack.append(h)
        for d in graph.get(h, []):
            if state.get(d) == 1:
                cycle = stack[stack.index(d):] + [d]
                problems.append("includes run in a circle: " + " -> ".join(cycle))
            elif d not in state:
                visit(d)
        stack.pop()
        state[h] = 2

    for h in sorted(graph):
        if h not in state:
            visit(h)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} include problem(s)")
        return 1
    print(f"{len(sources)} files: module boundaries kept, no include cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
