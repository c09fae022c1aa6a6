"""The issue's interactive numbers as one Markdown table row per ``results.json``.

Reads the ``results.json`` of ``benchmarks/interactive_bench.py`` runs made with
``--protocol box+clicks:6 --protocol clicks:20 --protocol scribble:3`` and prints, per run,
mean Dice after the box and box + 1/3/5 clicks, after 1/3/5/10/20 clicks alone, after one
scribble and one/two more, NoC@85/@90 of clicks alone (targets never reaching it), the share
of corrections that lower Dice per protocol and the ``predict`` p50/p95 over all calls::

    .venv/bin/python benchmarks/interactive_table.py out/mine/results.json out/other/results.json

Interaction ``k`` is entry ``k - 1`` of ``mean_dice_per_step`` (the first box or click is
interaction 1), so "5 clicks" is entry 4 and "box + 3 clicks" entry 3.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

COLUMNS = {
    "box+clicks": (("box", 1), ("box +1 click", 2), ("+3", 4), ("+5", 6)),
    "clicks": (("1 click", 1), ("3 clicks", 3), ("5 clicks", 5), ("10 clicks", 10),
               ("20 clicks", 20)),
    "scribble": (("1 scribble", 1), ("+1", 2), ("+2", 3)),
}  # fmt: skip


def _row(name: str, payload: dict) -> list[str]:
    blocks = {s["protocol"]: s for s in payload["summary"] if s.get("status") == "ok"}
    cells = [name]
    for proto, cols in COLUMNS.items():
        steps = blocks[proto]["overall"]["mean_dice_per_step"] if proto in blocks else []
        cells += [f"{steps[k - 1]:.3f}" if k <= len(steps) else "-" for _, k in cols]
    noc = blocks.get("clicks", {}).get("overall", {}).get("noc", {})
    cells.append(" / ".join(f"{noc[t]['mean']:.1f} ({noc[t]['never_reached']})"
                            for t in ("85", "90") if t in noc) or "-")  # fmt: skip
    worse = [blocks[p]["overall"].get("worse_steps") for p in COLUMNS if p in blocks]
    cells.append(" / ".join("-" if w is None else f"{100 * w:.0f} %" for w in worse))
    lat = [blocks[p]["timing"]["latency_s"] for p in COLUMNS if p in blocks]
    n = sum(x["n"] for x in lat)
    p50 = max(x["p50"] for x in lat) * 1000 if lat else float("nan")
    p95 = max(x["p95"] for x in lat) * 1000 if lat else float("nan")
    cells.append(f"{p50:.0f} / {p95:.0f} ({n} calls)")
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="results.json files")
    parser.add_argument("--name", action="append", help="row names (default: folder names)")
    args = parser.parse_args()
    names = args.name or [p.parent.name for p in args.results]
    header = ["run"] + [c for cols in COLUMNS.values() for c, _ in cols]
    header += ["NoC@85 / @90 clicks (never)", "corrections lowering Dice: box+clicks / "
               "clicks / scribble", "predict p50 / p95 ms (max over protocols)"]  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, path in zip(names, args.results, strict=True):
        print("| " + " | ".join(_row(name, json.loads(path.read_text()))) + " |")


if __name__ == "__main__":
    main()
