#!/usr/bin/python3
"""Top functions of a callgrind profile, with readable names.

Usage: callgrind_top.py CALLGRIND_OUT [N]
Runs callgrind_annotate (inclusive and self), keeps the top N functions of each (default 30),
and prints them with template arguments and parameter lists elided, so that Boost.Asio and
Beast frames fit on a line; then the raw callgrind_annotate lines, truncated to 400 characters.
"""

import re
import subprocess
import sys

LINE = re.compile(r"^\s*([\d,]+)\s+\(\s*([\d.]+)%\)\s+(.*)$")


def shorten(location):
    """"file:function [object]" -> the function with template arguments and parameters elided."""
    obj = ""
    m = re.search(r"\s+\[([^\]]*)\]$", location)
    if m and not m.group(1).startswith("clone "):
        obj, location = m.group(1), location[: m.start()]
    parts = re.split(r"(?<!:):(?!:)", location, maxsplit=1)
    name = parts[1] if len(parts) == 2 else parts[0]
    if name.startswith("0x"):  # no symbol: name the object instead
        return f"{name} (in {obj.rsplit('/', 1)[-1] or '?'})"
    clone = ""
    m = re.search(r"\s*(\[clone [^\]]*\])$", name)
    if m:
        clone, name = " " + m.group(1), name[: m.start()]
    protected = {"operator<<": "\x01", "operator<=>": "\x02", "operator<=": "\x03", "operator<": "\x04",
                 "operator>>": "\x05", "operator>=": "\x06", "operator>": "\x07", "operator()": "\x08",
                 "operator->": "\x0e"}
    for k, v in protected.items():
        name = name.replace(k, v)
    previous = None
    while previous != name:  # innermost first; the placeholders contain no brackets
        previous = name
        name = re.sub(r"<[^<>]*>", "\x10", name)
        name = re.sub(r"\([^()]*\)", "\x11", name)
    for k, v in protected.items():
        name = name.replace(v, k)
    name = name.replace("\x10", "<…>").replace("\x11", "(…)")
    name = re.sub(r"^(?:auto|void|decltype \(…\)) ", "", name)
    return (name + clone).strip()


def annotate(path, inclusive):
    out = subprocess.run(["callgrind_annotate", "--auto=no", f"--inclusive={'yes' if inclusive else 'no'}", path],
                         check=True, capture_output=True, text=True).stdout
    rows = []
    total = None
    in_table = False
    for line in out.splitlines():
        if "PROGRAM TOTALS" in line:
            m = LINE.match(line)
            total = int(m.group(1).replace(",", "")) if m else total
            continue
        if line.rstrip().endswith("file:function"):
            in_table = True
            continue
        if not in_table or line.startswith("---"):
            continue
        if not line.strip():
            if rows:
                break
            continue
        m = LINE.match(line)
        if m:
            rows.append((int(m.group(1).replace(",", "")), float(m.group(2)), m.group(3), line))
    return total, rows


def main():
    path = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    for inclusive in (True, False):
        total, rows = annotate(path, inclusive)
        title = "inclusive (function and everything it calls)" if inclusive else "self (exclusive)"
        print(f"## top {n} functions, {title}; program total {total:,} instructions\n")
        print(f"{'%':>6}  {'Ir':>13}  function")
        for ir, pct, where, _ in rows[:n]:
            print(f"{pct:6.2f}  {ir:13,}  {shorten(where)}")
        print()
    # Self cost summed over all instantiations of the same (shortened) name: Beast's buffer
    # sequence templates, for one, come in many instantiations that each look small.
    total, rows = annotate(path, False)
    grouped = {}
    for ir, _, where, _ in rows:
        key = shorten(where)
        grouped[key] = grouped.get(key, 0) + ir
    print(f"## top {n} self costs grouped by shortened name (all template instantiations summed)\n")
    print(f"{'%':>6}  {'Ir':>13}  function")
    for key, ir in sorted(grouped.items(), key=lambda kv: -kv[1])[:n]:
        print(f"{100.0 * ir / total:6.2f}  {ir:13,}  {key}")
    print()
    for inclusive in (True, False):
        _, rows = annotate(path, inclusive)
        print(f"## raw callgrind_annotate --inclusive={'yes' if inclusive else 'no'} "
              f"(top {n}, lines cut at 400 characters)\n")
        for _, _, _, line in rows[:n]:
            print(line[:400])
        print()


if __name__ == "__main__":
    main()
