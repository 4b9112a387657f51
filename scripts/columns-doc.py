#!/usr/bin/env python3
"""Prints the column tables of results/README.md from the row types' doc comments:
   scripts/columns-doc.py src/report/row.rs SummaryRow
   scripts/columns-doc.py src/report/cells.rs CellRow
tests/results_doc.rs checks that every column is documented."""
import re, sys

path, name = sys.argv[1], sys.argv[2]
src = open(path).read()
body = src[src.index(f"pub struct {name} {{"):]
body = body[: body.index("\n}\n")]
doc = []
print("| column | meaning |\n|---|---|")
for line in body.splitlines()[1:]:
    line = line.strip()
    if line.startswith("///"):
        doc.append(line[3:].strip())
    elif m := re.match(r"pub (\w+):", line):
        print(f"| `{m.group(1)}` | {' '.join(doc)} |")
        doc = []
