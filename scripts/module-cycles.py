#!/usr/bin/env python3
"""Fails when a crate's modules import each other in a cycle (the style guide: no
module cycles). Reads `crate::a::b` and `super::x` paths of every file of each
crate's src/ (comments and `#[cfg(test)] mod tests` blocks left out), maps each to
the longest module it names, and reports every strongly connected group of modules
with the imports that close it.

    scripts/module-cycles.py [CRATE_SRC_DIR ...]     (default: crates/*/src)
"""
import glob
import os
import re
import sys


def modules_of(root):
    files = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".rs")]
    edges = {}
    for f in files:
        rel = os.path.relpath(f, root)[:-3].split("/")
        if rel[-1] in ("mod", "lib", "main"):
            rel = rel[:-1]
        src = open(f, encoding="utf-8").read()
        src = re.split(r"#\[cfg\(test\)\]\s*mod tests", src)[0]
        src = re.sub(r"//[^\n]*", "", src)
        deps = set()
        for p in re.findall(r"crate::([a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*)", src):
            deps.add(tuple(p.split("::")))
        for p in re.findall(r"\bsuper::([a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*)", src):
            deps.add(tuple(rel[:-1]) + tuple(p.split("::")))
        edges["/".join(rel) or "crate"] = deps
    return edges


def graph(edges):
    mods = set(edges)

    def target(path):
        for i in range(len(path), 0, -1):
            k = "/".join(path[:i])
            if k in mods:
                return k
        return None

    g = {m: set() for m in mods}
    for m, deps in edges.items():
        for d in deps:
            t = target(d)
            # A module and its own submodules are one unit here.
            if t and t != m and not m.startswith(t + "/") and not t.startswith(m + "/"):
                g[m].add(t)
    return g


def cycles(g):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def main():
    roots = sys.argv[1:] or sorted(glob.glob("crates/*/src"))
    bad = 0
    for root in roots:
        g = graph(modules_of(root))
        for comp in cycles(g):
            bad += 1
            print(f"{root}: modules import each other in a cycle: {', '.join(comp)}")
            for m in comp:
                print(f"  {m} -> {', '.join(sorted(x for x in g[m] if x in comp))}")
    if bad:
        sys.exit(1)
    print(f"module cycles: none in {', '.join(roots)}")


main()
