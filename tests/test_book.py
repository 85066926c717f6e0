"""Book lint: notebook discipline, table of contents, citations, exercises, setup cells."""

import re
import subprocess
import sys

import pytest

from book import CHAPTERS, ROOT, chapter_number, code, colab_cell, load, markdown
from sheetlab import exercises

ids = [p.stem for p in CHAPTERS]


def test_every_chapter_is_in_the_toc_and_exists():
    on_disk = sorted((ROOT / "chapters").glob("*.ipynb"))
    assert sorted(CHAPTERS) == on_disk
    assert [chapter_number(p) for p in CHAPTERS] == list(range(len(CHAPTERS)))


@pytest.mark.parametrize("path", CHAPTERS, ids=ids)
def test_outputs_are_stripped(path):
    result = subprocess.run([sys.executable, "-m", "nbstripout", "--verify", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, f"{path.name} carries outputs: run nbstripout on it"


@pytest.mark.parametrize("path", CHAPTERS, ids=ids)
def test_kernel_metadata_and_one_title(path):
    nb = load(path)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert nb["metadata"]["sheetlab"]["chapter"] == chapter_number(path)
    titles = re.findall(r"^# \S", markdown(nb), flags=re.M)
    assert len(titles) == 1, f"{path.name} has {len(titles)} H1 titles"
    first_markdown = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "".join(first_markdown["source"]).lstrip().startswith("# ")


@pytest.mark.parametrize("path", CHAPTERS, ids=ids)
def test_first_code_cell_is_the_colab_setup_cell(path):
    expected = colab_cell.setup_cell_source(*colab_cell.repository())
    first = colab_cell.first_code_cell(load(path))
    assert "".join(first["source"]) == expected, "run: python tools/colab_cell.py --fix"


def test_setup_cell_is_a_no_op_outside_colab():
    source = colab_cell.setup_cell_source(*colab_cell.repository())
    result = subprocess.run([sys.executable, "-c", source + "\nprint('ran')"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout == "ran\n" and result.stderr == ""


@pytest.mark.parametrize("path", CHAPTERS, ids=ids)
def test_chapter_has_goals_widget_and_references(path):
    nb = load(path)
    text, source = markdown(nb), code(nb)
    assert re.search(r"^#+ Learning goals", text, flags=re.M), "no 'Learning goals' section"
    assert "ipywidgets" in source or "sheetlab.widgets" in source, "no interactive widget"
    assert "{bibliography}" in "".join("".join(c["source"]) for c in nb["cells"])


@pytest.mark.parametrize("path", CHAPTERS, ids=ids)
def test_citations_exist_in_the_bibliography(path):
    bib_keys = set(re.findall(r"^@\w+\{([^,]+),", (ROOT / "references.bib").read_text(), flags=re.M))
    cited = re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", markdown(load(path)))
    keys = {k.strip() for group in cited for k in group.split(",")}
    assert keys <= bib_keys, f"unknown citation keys: {keys - bib_keys}"


@pytest.mark.parametrize("path", [p for p in CHAPTERS if chapter_number(p) > 0],
                         ids=[p.stem for p in CHAPTERS if chapter_number(p) > 0])
def test_chapter_checks_exactly_its_registered_exercises(path):
    checked = re.findall(r"""check\(\s*["'](\w+)["']""", code(load(path)))
    registered = [e.name for e in exercises.exercises_for_chapter(chapter_number(path))]
    assert registered, f"chapter {chapter_number(path)} registers no graded exercise"
    assert sorted(checked) == sorted(registered)
