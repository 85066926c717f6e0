"""Run the benchmarks and write their figures to benchmarks/results.json and results.md.

Usage: ``python benchmarks/run.py [NAME ...]`` runs ``benchmarks/bench_NAME.py`` (all when no
name is given). Each benchmark module has ``run() -> dict`` returning
``{"title": str, "rows": [dict, ...], "notes": str}``; results of benchmarks not run this time
are kept from the previous results file. Timings are medians of repeated runs; quote ratios.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS_JSON = HERE / "results.json"
RESULTS_MD = HERE / "results.md"


def machine() -> dict:
    """Where the figures were measured."""
    import numpy
    import torch

    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "torch": torch.__version__,
    }


def markdown(results: dict) -> str:
    """The results as Markdown tables, one section per benchmark."""
    lines = ["# Benchmark results", "",
             "Written by `python benchmarks/run.py`; do not edit by hand.", ""]
    for name, entry in sorted(results.items()):
        lines += [f"## {entry['title']} (`{name}`)", "",
                  f"Measured {entry['measured']} on {entry['machine']['cores']} cores "
                  f"({entry['machine']['cpu']}, torch {entry['machine']['torch']}).", ""]
        rows = entry["rows"]
        header = list(rows[0])
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(_fmt(row[k]) for k in header) + " |" for row in rows]
        if entry.get("notes"):
            lines += ["", entry["notes"]]
        lines.append("")
    return "\n".join(lines)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    args = parser.parse_args(argv)
    names = args.names or sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    results = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
    sys.path.insert(0, str(HERE))
    for name in names:
        print(f"running {name} ...", flush=True)
        entry = importlib.import_module(f"bench_{name}").run()
        entry["measured"] = dt.date.today().isoformat()
        entry["machine"] = machine()
        results[name] = entry
        RESULTS_JSON.write_text(json.dumps(results, indent=2) + "\n")
        RESULTS_MD.write_text(markdown(results))
        print(markdown({name: entry}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
