#!/usr/bin/env bash
# Module import cycles within each crate of the workspace (house style: none allowed).
#
# Usage: scripts/dev/cycles.sh [--quiet]   (exit 1 when a cycle exists; --quiet prints the count only)
#
# A module is a source file (`a.rs`, `a/mod.rs`, `a/b.rs` -> `a::b`). An edge A -> B is a path
# `crate::B...` or `super::...` written in A outside its `#[cfg(test)]` part; a name the crate
# root or a `mod.rs` re-exports (`pub use b::X`) counts as an edge to the module that defines it,
# and `mod`/`pub use` lines themselves are not edges (a parent re-exporting its children is not a
# cycle). A cycle is a strongly connected component of two or more modules.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec python3 - "$@" <<'PY'
import json, os, re, subprocess, sys

quiet = "--quiet" in sys.argv
meta = json.loads(subprocess.run(["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"],
                                 check=True, capture_output=True, text=True).stdout)

def strip(text):
    text = re.sub(r"//[^\n]*", "", text)
    cut = text.find("#[cfg(test)]")
    return text if cut < 0 else text[:cut]

def modules(src_root):
    """module path (tuple) -> file, for the library (or binary) rooted at src_root."""
    base = os.path.dirname(src_root)
    mods = {(): src_root}
    for dirpath, _, files in os.walk(base):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), base)[:-3].split(os.sep)
            if rel in (["lib"], ["main"]):
                continue
            if rel[-1] == "mod":
                rel = rel[:-1]
            mods[tuple(rel)] = os.path.join(dirpath, f)
    return mods

USE = re.compile(r"\bpub(?:\([^)]*\))?\s+use\s+(?:self::)?([a-z_0-9]+)::(\{[^;]*\}|[A-Za-z_0-9]+)", re.S)

def reexports(mods):
    """(module, Name) -> defining module, from `pub use child::{..}` in parents."""
    out = {}
    for m, f in mods.items():
        text = strip(open(f).read())
        for child, names in USE.findall(text):
            if m + (child,) not in mods:
                continue
            for n in re.findall(r"[A-Za-z_][A-Za-z_0-9]*", names):
                out[(m, n)] = m + (child,)
    return out

PATH = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z_0-9]*)+|::\{[^;]*\})")

def resolve(mods, rex, start, segs):
    cur = start
    for i, s in enumerate(segs):
        if cur + (s,) in mods:
            cur = cur + (s,)
            continue
        if (cur, s) in rex:
            return rex[(cur, s)]
        return cur
    return cur

def edges(mods, rex):
    g = {m: set() for m in mods}
    for m, f in mods.items():
        text = strip(open(f).read())
        text = re.sub(r"^\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*;|^\s*pub(\([^)]*\))?\s+use\s+(self::)?(?!crate::|super::)\w+::[^;]*;", "", text, flags=re.M)
        for head, tail in PATH.findall(text):
            start = () if head == "crate" else m[:-1]
            groups = [tail[2:]] if not tail.startswith("::{") else re.split(r",", tail[3:-1])
            for grp in groups:
                segs = [s for s in re.split(r"::", grp.strip().lstrip(":")) if s and re.match(r"^[A-Za-z_]\w*$", s)]
                segs = [s for s in segs if s not in ("self",)]
                target = resolve(mods, rex, start, segs)
                if target != m and target != () and m[:len(target)] != target:
                    g[m].add(target)
    return g

def sccs(g):
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1: out.append(comp)
    sys.setrecursionlimit(10000)
    for v in g:
        if v not in index: visit(v)
    return out

total = 0
for pkg in sorted(meta["packages"], key=lambda p: p["name"]):
    for t in pkg["targets"]:
        if not set(t["kind"]) & {"lib", "bin"} or not t["src_path"].endswith(("lib.rs", "main.rs")):
            continue
        if "bin" in t["kind"] and any("lib" in o["kind"] for o in pkg["targets"]):
            continue  # the thin binary beside a library shares its modules
        mods = modules(t["src_path"])
        g = edges(mods, reexports(mods))
        for comp in sccs(g):
            total += 1
            if not quiet:
                names = sorted("::".join(c) for c in comp)
                print(f"{pkg['name']}: cycle {' <-> '.join(names)}")
print(f"cycles: {total}")
sys.exit(1 if total else 0)
PY
