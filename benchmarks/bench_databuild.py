"""Data-build throughput: the default piano set, from scores to cached correspondences.

Builds every piece of the default piano subset into an empty temporary cache with one worker
per core (``sheetlab data build --kind piano``), and reports pieces per minute,
correspondences per second and audio seconds produced per second (× real time). Includes the
music21 conversion of each score (music21's own parse cache may be warm).
"""

from __future__ import annotations

import os
import tempfile
import time

from sheetlab.corpus import pieces


def run() -> dict:
    from sheetlab.databuild import build, info

    selection = pieces("piano")
    saved = os.environ.get("SHEETLAB_DATA")
    with tempfile.TemporaryDirectory() as folder:
        os.environ["SHEETLAB_DATA"] = folder
        try:
            start = time.perf_counter()
            report = build(selection, progress=False)
            seconds = time.perf_counter() - start
            total = info(selection)[-1]
        finally:
            if saved is None:
                os.environ.pop("SHEETLAB_DATA")
            else:
                os.environ["SHEETLAB_DATA"] = saved
    audio_s = total["audio_hours"] * 3600
    row = {
        "pieces": len(report.built), "failed": len(report.failed), "workers": os.cpu_count(),
        "wall_s": seconds, "pieces_per_min": 60 * len(report.built) / seconds,
        "correspondences_per_s": total["correspondences"] / seconds,
        "audio_x_real_time": audio_s / seconds,
    }
    return {
        "title": "Data build: default piano set",
        "rows": [row],
        "notes": f"{total['pages']} pages, {total['note_heads']} note heads, "
                 f"{total['correspondences']} correspondences, {audio_s / 60:.1f} min of audio. "
                 "One run (a build is minutes long); the budget is 10 minutes.",
    }
