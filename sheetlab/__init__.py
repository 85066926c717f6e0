"""sheetlab — learning correspondences between music audio and images of sheet music.

The library behind the sheetlab book: one module per concept (``spectrogram``, ``perform``,
``exercises``, ...). Each public function's docstring names the chapter that teaches it.
"""

__version__ = "0.1.0"
