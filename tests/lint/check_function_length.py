#!/usr/bin/env python3
"""No function in src/ longer than 80 lines (the expression interpreter's
switch excepted): long functions are where a newcomer gets lost.

A function is a definition that starts at column 0 and ends at the first
line that is a lone "}" at column 0 (the project's format: clang-format,
Google style, namespaces not indented). Lambdas and local classes count
toward the function that holds them.

    check_function_length.py ROOT [--list]
"""
import os
import re
import sys

LIMIT = 80
# file, function name: allowed past the limit, with the reason.
ALLOWED = {
    ("src/nfa/eval.cc", "Evaluator::Eval"): "the expression interpreter's switch, one case per operator",
}
START = re.compile(r"^(?!namespace|struct|class|enum|union|extern|template\s*<[^>]*>\s*(struct|class))"
                   r"[A-Za-z_][^;]*\)\s*(const\s*)?(noexcept\s*)?(override\s*)?\{\s*$")
NAME = re.compile(r"([A-Za-z_][\w:~]*)\s*\(")


def functions(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        start = i
        # A signature over several lines: join until "{" at the end.
        sig = line
        j = i
        while (re.match(r"^[A-Za-z_]", line) and not sig.rstrip().endswith(("{", ";", "}")) and j + 1 < len(lines)
               and j - i < 6):
            j += 1
            sig += " " + lines[j].strip()
        if re.match(r"^[A-Za-z_]", line) and START.match(sig):
            m = NAME.search(sig)
            k = j + 1
            while k < len(lines) and lines[k] != "}":
                k += 1
            yield (m.group(1) if m else "?"), start + 1, k - start + 1
            i = k + 1
            continue
        i += 1


def main(root, list_all):
    problems = []
    for dirpath, _, names in os.walk(os.path.join(root, "src")):
        for n in sorted(names):
            if not n.endswith(".cc"):
                continue
            path = os.path.join(dirpath, n)
            rel = os.path.relpath(path, root)
            for name, line, length in functions(path):
                if list_all and length > 40:
                    print(f"{rel}:{line}: {name}: {length} lines")
                if length > LIMIT and (rel, name) not in ALLOWED:
                    problems.append(f"{rel}:{line}: {name} is {length} lines (limit {LIMIT})")
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} function(s) longer than {LIMIT} lines")
        return 1
    print(f"every function in src/ is at most {LIMIT} lines (allowed past it: {len(ALLOWED)})")
    return 0


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    sys.exit(main(args[0] if args else ".", "--list" in sys.argv))
