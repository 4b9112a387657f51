#!/usr/bin/env python3
"""Import cycles between the modules of each crate, at file level: exits 1 and prints
each cycle, 0 when there is none. A file's module is its path (src/sweep/drain.rs is
sweep::drain, src/sweep/mod.rs is sweep); an edge A -> B is a path in A's code
(`crate::…`, `super::…`, `self::…`, or a child module named in a `use`) that resolves
to B's module or to an item of it. A module's paths into its own submodules are not
edges (`mod x;` and the facade's `pub use x::Y` are containment, not imports); its
submodules' paths back into it are. Tests are left out (#[cfg(test)] modules and
*_tests.rs files).

It also checks the layers of ARCHITECTURE.md: each crate's table there gives every
top-level module a layer, and an edge may not point from a lower layer to a higher
one. A top-level module missing from the table is an error too, so the table stays
true. The crate root (lib.rs) is a facade and has no layer.

  scripts/check-cycles.py            # every crate of the workspace
"""
import os, re, sys

CRATES = {"acceptbench": "src", "loadgen": "loadgen/src", "common": "common/src"}
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARCHITECTURE = os.path.join(root, "ARCHITECTURE.md")


def layers():
    """{crate: {top-level module: layer}} from ARCHITECTURE.md's tables: under a
    `## <crate> (...)` heading, rows `| <layer> | `a`, `b` | ... |`."""
    out, crate = {}, None
    for line in open(ARCHITECTURE, encoding="utf-8"):
        h = re.match(r"^## (\w+) \(", line)
        if h:
            crate = h.group(1) if h.group(1) in CRATES else None
            continue
        row = re.match(r"^\|\s*(\d+)\s*\|([^|]*)\|", line)
        if crate and row:
            for name in re.findall(r"`(\w+)`", row.group(2)):
                out.setdefault(crate, {})[name] = int(row.group(1))
    return out


def modules(src):
    mods = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs") or f.endswith("_tests.rs") or f == "main.rs":
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), src)[:-3].split(os.sep)
            if rel[-1] in ("mod", "lib"):
                rel = rel[:-1]
            mods[tuple(rel)] = os.path.join(dirpath, f)
    return mods


def strip_tests(text):
    # Drop `#[cfg(test)] mod … { … }` blocks (brace-matched) and comments.
    text = re.sub(r"//[^\n]*", "", text)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def paths(text):
    """Every path written in the file, expanded from `use` trees, as lists of segments."""
    found = []
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        found.extend(expand(m.group(1).replace("\n", " ")))
    for m in re.finditer(r"\b((?:crate|super|self)(?:::\w+)+)", text):
        found.append(m.group(1).split("::"))
    return found


def expand(tree):
    tree = tree.strip()
    if tree.startswith("::"):
        return []
    m = re.match(r"^([\w:]*?)(?:::)?\{(.*)\}$", tree, re.S)
    if m:
        prefix = [p for p in m.group(1).split("::") if p]
        parts, depth, cur = [], 0, ""
        for ch in m.group(2):
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
                continue
            depth += {"{": 1, "}": -1}.get(ch, 0)
            cur += ch
        parts.append(cur)
        out = []
        for p in parts:
            if p.strip():
                out.extend(prefix + q for q in expand(p))
        return out
    tree = re.sub(r"\s+as\s+\w+$", "", tree)
    return [[p for p in tree.split("::") if p]]


def resolve(me, path, mods):
    if not path:
        return None
    if path[0] == "crate":
        base, rest = (), path[1:]
    elif path[0] == "super":
        base, rest = me, path
        while rest and rest[0] == "super":
            base, rest = base[:-1], rest[1:]
    elif path[0] == "self":
        base, rest = me, path[1:]
    elif me + (path[0],) in mods:
        base, rest = me, path
    elif (path[0],) in mods and me == ():
        base, rest = (), path
    else:
        return None
    best = base if base in mods else None
    cur = base
    for seg in rest:
        cur = cur + (seg,)
        if cur in mods:
            best = cur
        else:
            break
    return best


def cycles(graph):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
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
                out.append(comp)

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            strong(v)
    return out


def layer_faults(crate, mods, graph, table):
    """Top-level modules without a layer, and edges that point up a layer."""
    faults = []
    for m in sorted({m[0] for m in mods if m}):
        if m not in table:
            faults.append(f"{crate}: module `{m}` has no layer in ARCHITECTURE.md: add it to the {crate} table")
    for a, tos in sorted(graph.items()):
        for b in sorted(tos):
            if not a or not b or a[0] == b[0] or a[0] not in table or b[0] not in table:
                continue
            if table[a[0]] < table[b[0]]:
                faults.append(
                    f"{crate}: {'::'.join(a)} (layer {table[a[0]]}) uses {'::'.join(b)} (layer {table[b[0]]}): "
                    "a module may use only its own layer or lower ones (ARCHITECTURE.md)"
                )
    return faults


def main():
    bad = 0
    table = layers()
    for crate, src in CRATES.items():
        mods = modules(os.path.join(root, src))
        graph = {}
        for me, path in mods.items():
            text = strip_tests(open(path, encoding="utf-8").read())
            for p in paths(text):
                to = resolve(me, p, mods)
                if to is not None and to[: len(me)] != me:
                    graph.setdefault(me, set()).add(to)
        for comp in cycles(graph):
            bad += 1
            names = sorted("::".join(m) or "(crate root)" for m in comp)
            print(f"{crate}: import cycle between {', '.join(names)}")
            for a in comp:
                for b in sorted(graph.get(a, ())):
                    if b in comp:
                        print(f"    {'::'.join(a) or '(root)'} -> {'::'.join(b) or '(root)'}")
        for f in layer_faults(crate, mods, graph, table.get(crate, {})):
            bad += 1
            print(f)
    if bad:
        print(f"{bad} fault(s): move what both sides need into a module both depend on, below both")
        return 1
    print("no import cycles; every module within its layer (ARCHITECTURE.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
