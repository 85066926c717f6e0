"""Writing cache files so that no reader ever sees a partial one (chapter 2).

Everything sheetlab caches under ``SHEETLAB_DATA`` is written through :func:`write_atomically`:
the bytes go to a temporary file in the destination's directory, which is then renamed onto
the destination (an atomic operation on POSIX file systems). A process killed mid-write leaves
at most a ``.partial-*`` file, which no reader opens and the next build removes.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

PARTIAL_PREFIX = ".partial-"
"""Name prefix of temporary files that are being written."""


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` all at once, creating its directory.

    Parameters
    ----------
    path : pathlib.Path
        The destination; replaced if it exists.
    data : bytes
        The complete contents.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=PARTIAL_PREFIX, suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_partial_files(folder: Path) -> int:
    """Delete the temporary files that killed writers left in ``folder``; returns how many."""
    partial = list(folder.glob(PARTIAL_PREFIX + "*")) if folder.is_dir() else []
    for path in partial:
        path.unlink(missing_ok=True)
    return len(partial)
