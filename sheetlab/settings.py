"""Process-wide settings read from the environment.

``SHEETLAB_FAST=1`` shrinks every chapter and experiment so the test suite can execute all of
them in minutes; ``SHEETLAB_DATA`` is where generated data is cached.
"""

from __future__ import annotations

import os
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}


def fast_mode() -> bool:
    """Whether ``SHEETLAB_FAST`` asks for the small, quick variant of every computation.

    Returns
    -------
    bool
        True when the environment variable is one of ``1``, ``true``, ``yes``, ``on``.
    """
    return os.environ.get("SHEETLAB_FAST", "").strip().lower() in _TRUE


def data_dir() -> Path:
    """The directory that caches generated data (``SHEETLAB_DATA``, default ``~/.cache/sheetlab``).

    Returns
    -------
    pathlib.Path
        The directory; it is not created here.
    """
    return Path(os.environ.get("SHEETLAB_DATA", Path.home() / ".cache" / "sheetlab")).expanduser()
