"""The ``sheetlab`` command: one subcommand per task (``sheetlab grade FOLDER``, ...).

Each subcommand is added by a function ``_add_<name>(subparsers)`` listed in ``_COMMANDS``; it
sets ``handler``, a function of the parsed arguments that returns the exit code. Handlers
import what they need, so ``sheetlab --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from sheetlab import __version__


def _grade(args: argparse.Namespace) -> int:
    """``sheetlab grade``: grade a folder of submitted chapter notebooks."""
    from sheetlab.grading import grade_folder

    folder = Path(args.folder)
    if not folder.is_dir():
        print(f"sheetlab grade: {folder} is not a folder", file=sys.stderr)
        return 2
    csv_path = Path(args.csv) if args.csv else folder / "grades.csv"
    try:
        rows = grade_folder(folder, csv_path=csv_path, timeout_s=args.timeout)
    except ModuleNotFoundError as error:
        print(f"sheetlab grade: {error}", file=sys.stderr)
        return 1
    if not rows:
        return 1
    print(f"grades written to {csv_path}")
    return 0


def _add_grade(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "grade", help="grade a folder of submitted chapter notebooks",
        description="Execute every *.ipynb in FOLDER (SHEETLAB_FAST=1), run the checks of "
                    "its chapter's exercises on the student's functions, print a table of "
                    "scores and write it as CSV.")
    parser.add_argument("folder", metavar="FOLDER", help="folder of submitted .ipynb files")
    parser.add_argument("--csv", metavar="PATH",
                        help="where to write the grades (default: FOLDER/grades.csv)")
    parser.add_argument("--timeout", metavar="S", type=float, default=600.0,
                        help="seconds any one cell may run (default: 600)")
    parser.set_defaults(handler=_grade)


_COMMANDS = (_add_grade,)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``sheetlab`` command, with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="sheetlab", description="Learning audio-sheet music correspondences: the "
                                     "command line of the sheetlab book and library.")
    parser.add_argument("--version", action="version", version=f"sheetlab {__version__}")
    subparsers = parser.add_subparsers(metavar="COMMAND", required=True)
    for add_command in _COMMANDS:
        add_command(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sheetlab`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments without the program name; ``sys.argv[1:]`` when None.

    Returns
    -------
    int
        The exit code: 0 on success (usage errors exit with 2 from argparse).
    """
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
