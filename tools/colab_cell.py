"""The Colab setup cell of every chapter, generated from ``_config.yml``.

The repository URL and branch live once, in ``_config.yml``; this script writes the first code
cell of every chapter from them (``python tools/colab_cell.py --fix``) and the book tests check
that every chapter carries exactly this cell.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MARKER = "# Colab setup"


def repository(config_path: Path = ROOT / "_config.yml") -> tuple[str, str]:
    """The repository URL and branch named in the book's configuration."""
    config = yaml.safe_load(config_path.read_text())
    return config["repository"]["url"], config["repository"]["branch"]


def setup_cell_source(url: str, branch: str) -> str:
    """Source of the setup cell: installs sheetlab and FluidSynth in Colab, a no-op elsewhere."""
    return (
        f"{MARKER}: in Google Colab this installs the FluidSynth library and sheetlab;\n"
        "# anywhere else it does nothing (a local install follows the README).\n"
        "import subprocess\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        '    subprocess.run(["apt-get", "-qq", "update"], check=True)\n'
        '    subprocess.run(["apt-get", "-qq", "install", "-y", "libfluidsynth3"], check=True)\n'
        "    subprocess.run(\n"
        f'        [sys.executable, "-m", "pip", "install", "-q", "sheetlab @ git+{url}@{branch}"],\n'
        "        check=True,\n"
        "    )"
    )


def chapters(toc_path: Path = ROOT / "_toc.yml") -> list[Path]:
    """Every notebook the table of contents names, in book order."""
    toc = yaml.safe_load(toc_path.read_text())
    files = [toc["root"]] + [entry["file"] for entry in toc.get("chapters", [])]
    return [ROOT / f"{name}.ipynb" for name in files]


def first_code_cell(notebook: dict) -> dict | None:
    """The first code cell of a notebook (as parsed JSON), or None."""
    return next((cell for cell in notebook["cells"] if cell["cell_type"] == "code"), None)


def fix(path: Path, source: str) -> bool:
    """Make the first code cell of ``path`` the setup cell; True when the file changed."""
    notebook = json.loads(path.read_text())
    cell = first_code_cell(notebook)
    if cell is not None and "".join(cell["source"]) == source:
        return False
    new = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
           "source": source.splitlines(keepends=True)}
    if cell is not None and "".join(cell["source"]).startswith(MARKER):
        notebook["cells"][notebook["cells"].index(cell)] = new
    else:
        first_md = next(i for i, c in enumerate(notebook["cells"]) if c["cell_type"] == "markdown")
        notebook["cells"].insert(first_md + 1, new)
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fix", action="store_true", help="rewrite the setup cells")
    args = parser.parse_args(argv)
    source = setup_cell_source(*repository())
    stale = []
    missing = [path for path in chapters() if not path.exists()]
    for path in missing:
        print(f"{path.relative_to(ROOT)}: named in _toc.yml but missing", file=sys.stderr)
    for path in (p for p in chapters() if p.exists()):
        if args.fix:
            if fix(path, source):
                print(f"updated {path.relative_to(ROOT)}")
        else:
            cell = first_code_cell(json.loads(path.read_text()))
            if cell is None or "".join(cell["source"]) != source:
                stale.append(path)
    for path in stale:
        print(f"{path.relative_to(ROOT)}: setup cell differs from _config.yml (run --fix)")
    return 1 if stale or missing else 0


if __name__ == "__main__":
    sys.exit(main())
