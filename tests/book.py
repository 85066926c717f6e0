"""Helpers for the book tests: the chapters named by the table of contents, parsed."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))  # tools/ is not a package: maintenance scripts

import colab_cell  # noqa: E402

CHAPTERS = colab_cell.chapters()


def load(path: Path) -> dict:
    """A notebook as parsed JSON."""
    return json.loads(path.read_text())


def chapter_number(path: Path) -> int:
    """The chapter number in a file name such as ``01-spectrograms.ipynb``."""
    return int(re.match(r"(\d+)-", path.name).group(1))


def markdown(notebook: dict) -> str:
    """All markdown of a notebook, fenced code blocks removed."""
    text = "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown")
    return re.sub(r"^(```|~~~).*?^\1", "", text, flags=re.S | re.M)


def code(notebook: dict) -> str:
    """All code of a notebook."""
    return "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code")
