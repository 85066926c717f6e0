"""Data augmentation: the training pieces engraved and performed once more, otherwise (chapter 11).

A network trained on one rendering of each piece can learn the pieces rather than the task:
the piano network of chapter 4, trained on the default condition only, localises 93 % of the
onsets of a quarter of the training chorales within one bucket and 83 % of the validation
chorales', and 84 % against 43 % for the string-quartet movements. Rendering the *same*
training pieces again under other conditions gives examples whose audio (tempo, tempo curve,
loudness) and sheet (horizontal spacing, line breaks) differ while the correspondences stay
exact, because every condition goes through the same engraving, performance and alignment as
the default one.

:data:`AUGMENTATIONS` is a fixed list, so ``--augment N`` names the same data on every
machine and its pieces are cached (and their cache keys hashed into a model card's
``data_hash``) like any other condition:

1. slower (0.8 of the score's tempo) with a smooth tempo curve of ±10 %, louder and softer
   notes, on a narrower page (180 mm: more systems, wider spacing);
2. faster (1.25) likewise, on a wider page (260 mm: fewer systems, tighter spacing);
3. and 4. milder versions of both (0.9 and 1.1, pages of 240 and 195 mm).

Validation and test pieces always stay in the default condition (``Condition()``), so
the numbers compare with those of a model trained without augmentation.

Measured (2026-12-05, 2 CPU threads): the first piano model trained on the whole catalogue
(``sheetlab/weights/piano-light.pt`` until the continuations came) trained 3 more epochs with
Adam at 1e-4 on the 340 training pieces in the default condition and the first two augmented
ones (``sheetlab train --kind piano --subset all --augment 2 --init-from ...``, 9 min per epoch)
went from 62.7 % to 64.1, 64.2 and 64.5 % of the 41 validation pieces' onsets within one
bucket, its validation loss from 2.078 to 1.978; the last five epochs of its own run at the
same learning rate without augmentation had stayed at 62.3-62.7 % while the validation loss
rose from 2.062 to 2.085. By group: chorales 82.8 to 83.8 %, quartet movements 43.3 to 44.5 %,
piano pieces 41.1 to 40.7 %. Less over-fitting, a small gain, and not what the quartet
movements need: a quarter of their onsets still land one to three buckets off, 30 % further.

What they needed was more music rather than the same music rendered otherwise: the same
first model trained 5 more epochs on the training pieces and their continuations (the measures
the catalogue cuts off the long pieces, :func:`sheetlab.corpus.continuations`; 93,068
examples, 7 min per epoch) went to 66.3 % (loss 1.858); by group chorales 83.2 %, quartet
movements 50.0 %, piano pieces 45.9 %. Both together then: that model trained 2 more epochs
(Adam at 1e-4, then 1e-5) on the training pieces and their continuations in the default
condition and the first two augmented ones (``--augment 2 --continuations 100``; 279,204
examples, 22 min per epoch; the shipped model) went to 67.2 and 68.2 % (loss 1.796); by group
chorales 84.3 %, quartet movements 53.4 %, piano pieces 45.5 %.
"""

from __future__ import annotations

from sheetlab.dataset import Condition
from sheetlab.engrave import EngraveSettings
from sheetlab.perform import PerformanceSettings

TEMPO_VARIATION = 0.1
"""Depth of the augmented performances' tempo curves (standard deviation of the log tempo)."""

VELOCITY_VARIATION = 8.0
"""Standard deviation of the augmented performances' velocities, in MIDI steps."""


def _condition(tempo_factor: float, page_width: int, seed: int) -> Condition:
    """One augmented condition: a performance's global tempo and seed, a page width (0.1 mm)."""
    return Condition(engrave=EngraveSettings(page_width=page_width),
                     performance=PerformanceSettings(tempo_factor=tempo_factor,
                                                     tempo_variation=TEMPO_VARIATION,
                                                     velocity_variation=VELOCITY_VARIATION,
                                                     seed=seed))


AUGMENTATIONS: tuple[Condition, ...] = (
    _condition(0.8, 1800, 1),
    _condition(1.25, 2600, 2),
    _condition(0.9, 2400, 3),
    _condition(1.1, 1950, 4),
)
"""The augmented conditions, in the order ``--augment N`` takes them."""


def conditions(n: int) -> list[Condition]:
    """The first ``n`` augmented conditions (chapter 11).

    Parameters
    ----------
    n : int
        How many, 0 to ``len(AUGMENTATIONS)``.

    Returns
    -------
    list of Condition
        ``AUGMENTATIONS[:n]``.
    """
    if not 0 <= n <= len(AUGMENTATIONS):
        raise ValueError(f"the number of augmented conditions must be in 0..{len(AUGMENTATIONS)}, "
                         f"got {n}")
    return list(AUGMENTATIONS[:n])
