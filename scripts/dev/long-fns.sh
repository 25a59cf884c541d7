#!/usr/bin/env bash
# Functions longer than a limit (default 120 lines, the house style's bound) outside tests.
#
# Usage: scripts/dev/long-fns.sh [LIMIT]   (exit 1 when one exists)
#
# Counts lines from a `fn` header to its closing brace, by brace matching on code with strings,
# chars and comments blanked. Skips integration tests (`*/tests/*.rs` beside a Cargo.toml, which
# excludes kis-e2e's library in tests/src), fuzz targets, build output, and each file's
# `#[cfg(test)]` part.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec python3 - "${1:-120}" <<'PY'
import os, re, sys

limit = int(sys.argv[1])

def blank(text):
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i); j = n if j < 0 else j
            out.append(" " * (j - i)); i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i); j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j])); i = j
        elif c == '"' or text.startswith('r"', i) or text.startswith("r#", i):
            m = re.match(r'r(#*)"', text[i:]) if c == "r" else None
            if c == "r" and not m:
                out.append(c); i += 1; continue
            if m:
                end = '"' + m.group(1); j = text.find(end, i + len(m.group(0))); j = n if j < 0 else j + len(end)
            else:
                j = i + 1
                while j < n and text[j] != '"':
                    j += 2 if text[j] == "\\" else 1
                j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j])); i = j
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]) or text.startswith("'\\u{", i):
            j = text.find("'", i + 1) + 1
            out.append(" " * (j - i)); i = j
        else:
            out.append(c); i += 1
    return "".join(out)

def skip(path):
    parts = path.split(os.sep)
    if "target" in parts or "fuzz" in parts or ".git" in parts:
        return True
    if "tests" in parts:
        k = len(parts) - 1 - parts[::-1].index("tests")
        return os.path.exists(os.path.join(*parts[:k], "Cargo.toml")) if k else False
    return False

found = []
for dirpath, dirs, files in os.walk("."):
    dirs[:] = [d for d in dirs if d not in ("target", ".git")]
    for f in files:
        path = os.path.join(dirpath, f)[2:]
        if not f.endswith(".rs") or skip(path):
            continue
        text = blank(open(path).read())
        cut = text.find("#[cfg(test)]")
        if cut >= 0:
            text = text[:cut]
        for m in re.finditer(r"\bfn\s+(\w+)[^;{]*\{", text):
            depth, j = 0, m.end() - 1
            while j < len(text):
                if text[j] == "{": depth += 1
                elif text[j] == "}":
                    depth -= 1
                    if depth == 0: break
                j += 1
            start = text.count("\n", 0, m.start()) + 1
            lines = text.count("\n", m.start(), j) + 1
            if lines > limit:
                found.append((lines, path, start, m.group(1)))
for lines, path, start, name in sorted(found, reverse=True):
    print(f"{lines:5} {path}:{start} {name}")
print(f"functions over {limit} lines: {len(found)}")
sys.exit(1 if found else 0)
PY
