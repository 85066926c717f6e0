"""The instructor's grader: made-up submissions in a temporary folder, graded end to end."""

from __future__ import annotations

import csv

import nbformat
import pytest

from sheetlab import cli, exercises
from sheetlab.grading import grade_folder

CORRECT = '''
def log_frequencies(bands_per_octave, fmin, fmax, fref=440.0):
    k = np.arange(np.floor(bands_per_octave * np.log2(fmin / fref)),
                  np.ceil(bands_per_octave * np.log2(fmax / fref)))
    freqs = fref * 2.0 ** (k / bands_per_octave)
    return freqs[(freqs >= fmin) & (freqs <= fmax)]

def time_to_frame(time_s, fps):
    frames = np.floor(np.asarray(time_s) * fps + 0.5).astype(int)
    return frames if np.ndim(time_s) else int(frames)

def frame_to_time(frame, fps):
    return np.asarray(frame) / fps
'''

PARTIAL = '''
def time_to_frame(time_s, fps):
    return int(time_s * fps)

def frame_to_time(frame, fps):
    raise NotImplementedError
'''

# numpy is imported only in fast mode: CORRECT gets full marks only if the grader sets it
NUMPY_IN_FAST_MODE = "import os\nassert os.environ['SHEETLAB_FAST'] == '1'\nimport numpy as np"


def _submission(path, *sources, chapter=1):
    """Write a notebook with one code cell per source and the chapter in its metadata."""
    nb = nbformat.v4.new_notebook(metadata={"sheetlab": {"chapter": chapter}})
    nb.cells = [nbformat.v4.new_markdown_cell("# Chapter 1 exercises")]
    nb.cells += [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(nb, path)


def _expected_partial_scores():
    """What the checks give PARTIAL's functions, computed here without a kernel."""
    namespace = {}
    exec(PARTIAL, namespace)  # noqa: S102 -- our own test source
    return {r.name: f"{r.n_passed}/{r.n_checks}"
            for r in exercises.check_chapter(1, namespace, verbose=False)}


@pytest.fixture(scope="module")
def submissions(tmp_path_factory):
    folder = tmp_path_factory.mktemp("submissions")
    _submission(folder / "alice.ipynb", NUMPY_IN_FAST_MODE, CORRECT)
    # a cell that fails first: the functions defined after it are graded all the same
    _submission(folder / "bob.ipynb", "1 / 0", PARTIAL)
    (folder / "carol.ipynb").write_text("{ this is not json")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(CORRECT)]
    nbformat.write(nb, folder / "dave.ipynb")
    return folder


@pytest.fixture(scope="module")
def graded(submissions):
    csv_path = submissions / "out" / "grades.csv"
    rows = grade_folder(submissions, csv_path=csv_path, timeout_s=120)
    return rows, csv_path


def test_correct_submission_gets_full_marks(graded):
    rows, _ = graded
    alice = rows[0]
    n = {e.name: len(e.cases) for e in exercises.exercises_for_chapter(1)}
    assert alice["student"] == "alice" and alice["chapter"] == 1 and alice["error"] == ""
    assert {name: alice[name] for name in n} == {name: f"{k}/{k}" for name, k in n.items()}
    assert alice["score"] == alice["max_score"] == 3


def test_partial_submission_scores_what_passes(graded):
    rows, _ = graded
    bob = rows[1]
    expected = _expected_partial_scores()
    assert expected["log_frequencies"] == f"0/{len(exercises.get('log_frequencies').cases)}"
    assert expected["frame_to_time"].startswith("0/")
    assert 0 < int(expected["time_to_frame"].split("/")[0]) < len(exercises.get("time_to_frame").cases)
    assert {name: bob[name] for name in expected} == expected
    passed, total = map(int, expected["time_to_frame"].split("/"))
    assert bob["score"] == round(passed / total, 2) and bob["error"] == ""


def test_unreadable_and_unlabelled_notebooks_get_an_error_row(graded):
    rows, _ = graded
    carol, dave = rows[2], rows[3]
    assert carol["file"] == "carol.ipynb" and "carol.ipynb: not a readable notebook" in carol["error"]
    assert dave["file"] == "dave.ipynb" and 'metadata["sheetlab"]["chapter"]' in dave["error"]
    assert carol["score"] == dave["score"] == 0


def test_csv_holds_the_rows(graded):
    rows, csv_path = graded
    with csv_path.open(newline="") as file:
        table = list(csv.DictReader(file))
    assert [r["student"] for r in table] == ["alice", "bob", "carol", "dave"]
    assert list(table[0]) == ["file", "student", "chapter", "log_frequencies", "time_to_frame",
                              "frame_to_time", "score", "max_score", "error"]
    for row, written in zip(rows, table):
        assert written == {key: str(row.get(key, "")) for key in written}


def test_cli_grades_a_folder(tmp_path, capsys):
    _submission(tmp_path / "erin.ipynb", NUMPY_IN_FAST_MODE, CORRECT)
    (tmp_path / "frank.ipynb").write_text("")
    assert cli.main(["grade", str(tmp_path), "--timeout", "120"]) == 0
    out = capsys.readouterr().out
    assert "erin" in out and "frank.ipynb: not a readable notebook" in out
    with (tmp_path / "grades.csv").open(newline="") as file:
        table = list(csv.DictReader(file))
    assert [(r["student"], r["score"], r["max_score"]) for r in table] == [
        ("erin", "3.0", "3"), ("frank", "0.0", "0")]


def test_cli_reports_a_missing_or_empty_folder(tmp_path, capsys):
    assert cli.main(["grade", str(tmp_path / "nowhere")]) == 2
    assert cli.main(["grade", str(tmp_path)]) == 1
    assert "no *.ipynb files" in capsys.readouterr().out
    assert not (tmp_path / "grades.csv").exists()


def test_checks_that_hang_cost_only_their_exercise(tmp_path):
    hanging = "import time\n\ndef time_to_frame(time_s, fps):\n    time.sleep(60)\n"
    rest = "def frame_to_time(frame, fps):\n    return frame / fps\n"
    _submission(tmp_path / "gina.ipynb", "import sheetlab.exercises", hanging, rest)
    (row,) = grade_folder(tmp_path, timeout_s=5)
    n = len(exercises.get("frame_to_time").cases)
    assert row["frame_to_time"] == f"{n}/{n}" and row["time_to_frame"].startswith("0/")
    assert row["error"] == "time_to_frame: its checks took longer than 5 s"


def test_missing_notebook_tools_are_named(tmp_path, monkeypatch, capsys):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "nbclient" else real_find_spec(name, *a))
    _submission(tmp_path / "hal.ipynb", CORRECT)
    assert cli.main(["grade", str(tmp_path)]) == 1
    assert "grading notebooks needs nbclient: pip install nbclient" in capsys.readouterr().err
