"""sheetlab — learning correspondences between music audio and images of sheet music.

The library behind the sheetlab book: one module per concept (``spectrogram``, ``perform``,
``exercises``, ...). Each public function's docstring names the chapter that teaches it.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``sheetlab.load_score``, imported on first use (music21 is slow to import)."""
    if name == "load_score":
        from sheetlab.corpus import load_score

        return load_score
    raise AttributeError(f"module 'sheetlab' has no attribute {name!r}")
