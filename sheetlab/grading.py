"""Grading a class's submitted chapter notebooks, for instructors (the exercises of every chapter).

``sheetlab grade FOLDER`` (or :func:`grade_folder`) executes every ``*.ipynb`` in a folder
with ``SHEETLAB_FAST=1``, then, in the same kernel, runs the checks of every exercise of the
notebook's chapter on the student's function of that name, one appended cell per exercise
(:func:`sheetlab.exercises.check_named`), and reads each result back from that cell's display
output. A cell that raises or runs too long does not stop the run, so one broken cell does not
zero the rest; a function that is missing scores 0. Which chapter a submission is comes from
its metadata, ``metadata["sheetlab"]["chapter"]``, which every chapter notebook carries.

The result is a row per notebook: file, student (the file's stem), chapter, one column per
exercise with ``passed/total`` checks, the score (each exercise is worth one point, split
evenly over its checks), the maximum score, and an error when the notebook, or the checks of
an exercise, could not be run. The rows are printed as a table and can be written as CSV.

The submitted files are never modified. The checks run inside the student's kernel, so a
student set on cheating could tamper with them: this grades honest work, it is not a sandbox.
Executing notebooks needs ``nbclient``, ``nbformat`` and ``ipykernel``.
"""

from __future__ import annotations

import csv
import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

from sheetlab.exercises import Exercise, exercises_for_chapter

if TYPE_CHECKING:
    from nbformat import NotebookNode

RESULTS_MIME = "application/vnd.sheetlab.grades+json"
"""MIME type of the display output through which an injected cell returns its result."""

KERNEL_NAME = "python3"


class SubmissionError(Exception):
    """A submitted notebook that cannot be graded; the message names the file and the reason."""


def _require_notebook_tools() -> None:
    """Raise a clear error when the packages that execute notebooks are not installed."""
    missing = [name for name in ("nbformat", "nbclient", "ipykernel")
               if importlib.util.find_spec(name) is None]
    if missing:
        raise ModuleNotFoundError(f"grading notebooks needs {', '.join(missing)}: "
                                  f"pip install {' '.join(missing)}")


def _read_submission(path: Path) -> tuple[NotebookNode, int]:
    """The notebook at ``path`` and its chapter, or a :class:`SubmissionError` saying why not."""
    import nbformat

    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as error:  # noqa: BLE001 -- not JSON, not a notebook, unreadable: all the same
        raise SubmissionError(f"{path.name}: not a readable notebook ({type(error).__name__}: "
                              f"{' '.join(str(error).split())[:200]})") from error
    chapter = nb.metadata.get("sheetlab", {}).get("chapter")
    if not isinstance(chapter, int) or isinstance(chapter, bool):
        raise SubmissionError(f"{path.name}: no chapter number in the notebook metadata "
                              f'(metadata["sheetlab"]["chapter"] is {chapter!r}); '
                              "was it made from a chapter of the book?")
    return nb, chapter


def _grading_cell_source(exercise: Exercise) -> str:
    """Code of a cell appended to a submission: checks one exercise, displays the result."""
    return (
        "from IPython.display import display as _sheetlab_display\n"
        "from sheetlab.exercises import check_named as _sheetlab_check_named\n"
        f"_sheetlab_display({{{RESULTS_MIME!r}: _sheetlab_check_named({exercise.name!r}, "
        "globals(), verbose=False).to_dict()}, raw=True)\n"
    )


def _result_of_grading_cell(cell: NotebookNode, exercise: Exercise,
                            timeout_s: float) -> tuple[dict, str]:
    """The check result displayed by an executed grading cell, and what went wrong if none."""
    outputs = cell.get("outputs", [])
    for output in outputs:
        if RESULTS_MIME in output.get("data", {}):
            return output["data"][RESULTS_MIME], ""
    errors = [output for output in outputs if output.get("output_type") == "error"]
    if errors and errors[0]["ename"] == "KeyboardInterrupt":
        reason = f"its checks took longer than {timeout_s} s"
    elif errors:
        reason = f"its checks failed ({errors[0]['ename']}: {errors[0]['evalue']})"
    else:
        reason = "its checks gave no result"
    return {"n_passed": 0, "n_checks": len(exercise.cases)}, f"{exercise.name}: {reason}"


def _execute_and_check(nb: NotebookNode, exercises: list[Exercise], path: Path,
                       timeout_s: float) -> tuple[list[dict], list[str]]:
    """Execute the notebook plus one grading cell per exercise.

    Returns
    -------
    results : list of dict
        Per exercise, ``CheckResult.to_dict()`` as computed in the kernel.
    problems : list of str
        One line per exercise whose checks did not finish.
    """
    import nbformat
    from nbclient import NotebookClient

    nb.cells += [nbformat.v4.new_code_cell(_grading_cell_source(e)) for e in exercises]
    client = NotebookClient(nb, timeout=timeout_s, kernel_name=KERNEL_NAME, allow_errors=True,
                            interrupt_on_timeout=True,
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute(env={**os.environ, "SHEETLAB_FAST": "1"})
    except Exception as error:  # noqa: BLE001 -- kernel died or did not start: report, go on
        raise SubmissionError(f"{path.name}: could not be executed "
                              f"({type(error).__name__}: {error})") from error
    cells = client.nb.cells[-len(exercises):]
    pairs = [_result_of_grading_cell(c, e, timeout_s) for c, e in zip(cells, exercises)]
    return [result for result, _ in pairs], [problem for _, problem in pairs if problem]


def grade_notebook(path: str | os.PathLike, timeout_s: float = 600) -> dict:
    """Grade one submitted chapter notebook (the exercises of every chapter).

    Parameters
    ----------
    path : str or os.PathLike
        The ``.ipynb`` file; its chapter is ``metadata["sheetlab"]["chapter"]``.
    timeout_s : float
        Seconds any one cell may run, the checks of each exercise included; a cell that runs
        longer is interrupted and counts as failed (for checks: 0 for that exercise).

    Returns
    -------
    dict
        ``file``, ``student`` (the file's stem), ``chapter``, one ``"passed/total"`` entry per
        exercise of the chapter, ``score`` (one point per exercise, split over its checks,
        rounded to 0.01), ``max_score`` and ``error`` (empty unless the notebook or the checks
        of an exercise could not be run). Never raises for a bad submission.

    Raises
    ------
    ModuleNotFoundError
        If ``nbformat``, ``nbclient`` or ``ipykernel`` is not installed.
    """
    _require_notebook_tools()
    path = Path(path)
    row: dict = {"file": path.name, "student": path.stem, "chapter": ""}
    try:
        nb, row["chapter"] = _read_submission(path)
    except SubmissionError as error:
        return {**row, "score": 0.0, "max_score": 0, "error": str(error)}
    exercises = exercises_for_chapter(row["chapter"])
    if not exercises:
        error = f"{path.name}: chapter {row['chapter']} has no exercises"
        return {**row, "score": 0.0, "max_score": 0, "error": error}
    try:
        results, problems = _execute_and_check(nb, exercises, path, timeout_s)
    except SubmissionError as error:
        results, problems = [{"n_passed": 0, "n_checks": len(e.cases)} for e in exercises], [str(error)]
    for exercise, result in zip(exercises, results):
        row[exercise.name] = f"{result['n_passed']}/{result['n_checks']}"
    score = sum(result["n_passed"] / result["n_checks"] for result in results)
    return {**row, "score": round(score, 2), "max_score": len(exercises),
            "error": "; ".join(problems)}


def _columns(rows: list[dict]) -> list[str]:
    """Column names: identity first, every exercise seen in any row, then the totals."""
    first, last = ["file", "student", "chapter"], ["score", "max_score", "error"]
    middle = dict.fromkeys(key for row in rows for key in row if key not in first + last)
    return first + list(middle) + last


def format_table(rows: list[dict]) -> str:
    """The grades as a plain-text table, one line per notebook.

    Parameters
    ----------
    rows : list of dict
        As returned by :func:`grade_folder`.

    Returns
    -------
    str
        A header, a rule and one line per row; columns padded to their widest entry.
    """
    columns = _columns(rows)
    cells = [columns] + [[str(row.get(column, "")) for column in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ["  ".join(text.ljust(width) for text, width in zip(line, widths)).rstrip()
             for line in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def write_csv(rows: list[dict], csv_path: str | os.PathLike) -> Path:
    """Write the grades as CSV (columns as in :func:`format_table`; missing entries empty).

    Returns
    -------
    pathlib.Path
        The file written (its folder is created if needed).
    """
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with csv_path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=_columns(rows), restval="")
        writer.writeheader()
        writer.writerows(rows)
    return csv_path


def grade_folder(folder: str | os.PathLike, csv_path: str | os.PathLike | None = None,
                 timeout_s: float = 600) -> list[dict]:
    """Grade every ``*.ipynb`` in a folder, print the table and optionally write a CSV.

    Each notebook runs in a fresh ``python3`` kernel with ``SHEETLAB_FAST=1``, in the folder
    (so relative paths resolve as they did for the student). A notebook that cannot be read,
    lacks the chapter metadata or cannot be executed gets a row with an error naming the file;
    the others are graded all the same.

    Parameters
    ----------
    folder : str or os.PathLike
        The folder of submissions (not searched recursively).
    csv_path : str or os.PathLike, optional
        Where to write the grades as CSV; nothing is written when None or when the folder
        holds no notebook.
    timeout_s : float
        Seconds any one cell may run (see :func:`grade_notebook`).

    Returns
    -------
    list of dict
        One row per notebook, sorted by file name (see :func:`grade_notebook`).

    Raises
    ------
    NotADirectoryError
        If ``folder`` is not a folder.
    ModuleNotFoundError
        If ``nbformat``, ``nbclient`` or ``ipykernel`` is not installed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: not a folder")
    paths = sorted(folder.glob("*.ipynb"))
    rows = [grade_notebook(path, timeout_s) for path in tqdm(paths, desc="grading", unit="notebook")]
    if csv_path is not None and rows:
        write_csv(rows, csv_path)
    print(format_table(rows) if rows else f"no *.ipynb files in {folder}")
    return rows
