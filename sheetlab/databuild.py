"""Filling the data cache for a whole set of pieces, and the table of what it holds (chapter 2).

:func:`build` computes the cached data (:func:`sheetlab.dataset.load_piece`) of many pieces in
parallel worker processes with a progress bar. Pieces already in the cache are skipped, found
without starting a worker (a second build of a built set takes a moment), so a build that was
interrupted resumes where it stopped; a piece that fails (a score verovio cannot lay out, a
missing sound font, ...) is reported at the end and the others go on.
:func:`info` summarises the cache per split, like the table of the MSMD data set.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Sequence

from tqdm.auto import tqdm

from sheetlab.cache import remove_partial_files
from sheetlab.corpus import Piece, cached_score, score
from sheetlab.dataset import Condition, cache_path, load_piece, read_piece
from sheetlab.settings import data_dir


@dataclass
class BuildReport:
    """What a build did.

    Attributes
    ----------
    built : list of str
        Ids of the pieces computed now.
    cached : list of str
        Ids of the pieces found in the cache.
    failed : list of tuple of (str, str)
        ``(piece id, error message)`` of the pieces that could not be built.
    """

    built: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        """A few lines for the terminal: counts, then every failure."""
        lines = [f"built {len(self.built)}, already cached {len(self.cached)}, "
                 f"failed {len(self.failed)}"]
        lines += [f"  FAILED {piece_id}: {error}" for piece_id, error in self.failed]
        return "\n".join(lines)


def _build_one(piece: Piece, condition: Condition) -> tuple[str, str, str | None]:
    """Build one piece in a worker: ``(piece id, "built" | "cached" | "failed", error)``."""
    try:
        the_score = score(piece)
        if cache_path(the_score, condition).exists():
            return piece.id, "cached", None
        load_piece(the_score, condition)
        return piece.id, "built", None
    except Exception as err:  # noqa: BLE001 - any failure of one piece is reported, not fatal
        return piece.id, "failed", f"{type(err).__name__}: {err}"


def build(pieces: Sequence[Piece], condition: Condition = Condition(), *,
          workers: int | None = None, progress: bool = True) -> BuildReport:
    """Fill the cache for ``pieces`` in parallel, resuming after an interruption (chapter 2).

    Parameters
    ----------
    pieces : sequence of sheetlab.corpus.Piece
        The pieces to build.
    condition : Condition
        Rendering condition.
    workers : int, optional
        Worker processes (default: every core, ``os.cpu_count()``); 1 builds in this process.
        Workers are fresh Python processes (``spawn``), not forks, so a build also works from a
        process whose threads hold locks (a notebook kernel that has used torch or FluidSynth);
        a script that calls ``build`` with several workers needs the usual
        ``if __name__ == "__main__":`` guard.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    BuildReport
        Which pieces were built, found cached, or failed (with the reason).
    """
    remove_partial_files(data_dir() / "pieces")
    report = BuildReport()
    bar = tqdm(total=len(pieces), desc="building pieces", unit="piece", disable=not progress)
    missing = []
    for piece in pieces:  # found in the cache here: no worker is started for them
        known = cached_score(piece)
        if known is not None and cache_path(known, condition).exists():
            report.cached.append(piece.id)
            bar.update()
        else:
            missing.append(piece)
    workers = min(workers or os.cpu_count() or 1, max(len(missing), 1))
    if workers == 1:
        results = (_build_one(p, condition) for p in missing)
        _collect(results, report, bar)
    else:
        # fresh worker processes (spawn), not forks: a fork of a process whose torch or
        # FluidSynth threads hold a lock (a notebook kernel that has trained or synthesised)
        # waits on that lock forever
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            _collect(pool.map(_build_one, missing, [condition] * len(missing)), report, bar)
    bar.close()
    return report


def _collect(results, report: BuildReport, bar) -> None:
    """Sort worker results into the report, advancing the progress bar."""
    for piece_id, status, error in results:
        if status == "failed":
            report.failed.append((piece_id, error))
        else:
            getattr(report, status).append(piece_id)
        bar.update()


def info(pieces: Sequence[Piece], condition: Condition = Condition()) -> list[dict]:
    """Per split: pieces, pages, note heads, correspondences and audio hours in the cache
    (chapter 2).

    Only pieces already in the cache are counted (``missing`` says how many are not).

    Parameters
    ----------
    pieces : sequence of sheetlab.corpus.Piece
        The pieces to summarise.
    condition : Condition
        Rendering condition.

    Returns
    -------
    list of dict
        One row per split (in the order train, valid, test, then any other) and a total row,
        with keys ``split``, ``pieces``, ``missing``, ``pages``, ``note_heads``,
        ``correspondences``, ``audio_hours``.
    """
    rows: dict[str, dict] = {}
    for piece in pieces:
        row = rows.setdefault(piece.split, {"split": piece.split, "pieces": 0, "missing": 0,
                                            "pages": 0, "note_heads": 0, "correspondences": 0,
                                            "audio_hours": 0.0})
        path = cache_path(score(piece), condition)
        if not path.exists():
            row["missing"] += 1
            continue
        data = read_piece(path)
        row["pieces"] += 1
        row["pages"] += data.n_pages
        row["note_heads"] += len(data.note_x)
        row["correspondences"] += data.n_correspondences
        row["audio_hours"] += data.duration_s / 3600
    order = {"train": 0, "valid": 1, "test": 2}
    table = sorted(rows.values(), key=lambda r: (order.get(r["split"], 3), r["split"]))
    total = {key: sum(r[key] for r in table) for key in table[0] if key != "split"} if table else {}
    return table + ([{"split": "total", **total}] if table else [])


def format_table(rows: list[dict]) -> str:
    """The rows of :func:`info` as an aligned text table."""
    header = ["split", "pieces", "missing", "pages", "note_heads", "correspondences", "audio_hours"]
    cells = [header] + [[f"{r[h]:.2f}" if isinstance(r[h], float) else str(r[h]) for h in header]
                        for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)

