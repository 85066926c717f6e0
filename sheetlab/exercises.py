"""Graded exercises: checks that run on a student's function inside a chapter notebook.

Every chapter ends with exercises: the student writes a function (``log_frequencies``, ...)
in the notebook and calls ``check("log_frequencies", log_frequencies)``, which runs the
exercise's cases and prints one line when all pass, or the first failing case (its call, the
expected and the obtained value, or the exception raised). The checks live here, in the
library, so they run wherever the notebook runs (Colab included, no tests folder needed);
``check`` never raises, so a chapter still runs from top to bottom with unfinished exercises.

The expected values are never written down: each case calls the library's reference
implementation (named as ``"module:function"`` and imported only when a check runs, so this
module stays light). The test suite runs every exercise against its reference (must pass),
a ``NotImplementedError`` stub and plausible wrong answers (must fail); the instructor's
grader (:mod:`sheetlab.grading`) runs the same checks on submitted notebooks.

A chapter adds its exercises at the end of this module, in a block of its own::

    register(Exercise(
        name="soft_targets", chapter=3, reference="sheetlab.targets:soft_targets",
        description="Soft target distribution over the B buckets of a staff.",
        cases=(Case((np.array([10.0]), 40), note="one note head"), ...),
    ))

and a wrong implementation of it to ``tests/exercise_wrong.py`` (the tests insist on one).
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Comparison = Callable[[Any, Any], "str | None"]
"""``compare(expected, obtained)``: ``None`` when they agree, else a one-line reason."""

_REGISTRY: dict[str, Exercise] = {}


# ---------------------------------------------------------------------------------------------
# comparing results


def _scalar(value: Any) -> str:
    """A value as a student would write it (numpy scalars as Python numbers, floats to 7 digits)."""
    value = value.item() if isinstance(value, np.generic) else value
    return repr(float(f"{value:.7g}")) if isinstance(value, float) else repr(value)


def _short(value: Any, width: int = 160) -> str:
    """A one-line, shortened description of a value (arrays: shape, dtype and a few entries)."""
    if isinstance(value, np.ndarray) and value.ndim > 0:
        flat = [_scalar(x) for x in value.ravel()]
        shown = flat if len(flat) <= 8 else flat[:3] + ["..."] + flat[-3:]
        flattened = ", flattened" if value.ndim > 1 else ""
        text = f"array of shape {value.shape}, {value.dtype}{flattened}: [{', '.join(shown)}]"
    else:
        text = _scalar(value[()] if isinstance(value, np.ndarray) else value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _first_difference(expected: np.ndarray, obtained: np.ndarray, bad: np.ndarray) -> str:
    """Describe where two equally shaped arrays first differ (``bad`` marks the mismatches)."""
    if expected.ndim == 0:
        return "wrong value"
    where = tuple(int(i) for i in np.argwhere(bad)[0])
    index = where[0] if len(where) == 1 else where
    return (f"{int(bad.sum())} of {bad.size} values differ; the first at index {index}: "
            f"expected {_scalar(expected[where])}, obtained {_scalar(obtained[where])}")


def _as_numbers(obtained: Any) -> tuple[np.ndarray | None, str | None]:
    """``obtained`` as a numeric array, or ``None`` and the reason it is not one."""
    if obtained is None:
        return None, "the function returned None (a missing `return`?)"
    try:
        array = np.asarray(obtained)
    except (TypeError, ValueError) as error:
        return None, f"the result is not array-like ({error})"
    if array.dtype.kind not in "biuf":
        return None, f"expected numbers, obtained {type(obtained).__name__} of dtype {array.dtype}"
    return array, None


def compare_close(expected: Any, obtained: Any, *, rtol: float = 1e-6,
                  atol: float = 1e-9) -> str | None:
    """Compare real numbers or arrays: same shape, values equal within tolerances.

    Parameters
    ----------
    expected : float or numpy.ndarray
        The reference result.
    obtained : Any
        The student's result (lists and numpy scalars are fine).
    rtol, atol : float
        Relative and absolute tolerance, as in :func:`numpy.isclose`.

    Returns
    -------
    str or None
        ``None`` when they agree, else a one-line reason.
    """
    got, reason = _as_numbers(obtained)
    if got is None:
        return reason
    want = np.asarray(expected, dtype=np.float64)
    if got.shape != want.shape:
        return f"wrong shape: expected {want.shape}, obtained {got.shape}"
    bad = ~np.isclose(got.astype(np.float64), want, rtol=rtol, atol=atol)
    return _first_difference(want, got, bad) if bad.any() else None


def compare_integers(expected: Any, obtained: Any) -> str | None:
    """Compare integers or integer arrays (indices): same shape, integer type, equal values.

    Parameters
    ----------
    expected : int or numpy.ndarray
        The reference result.
    obtained : Any
        The student's result; floats are rejected even when their values are right, since
        an index must be usable for indexing.

    Returns
    -------
    str or None
        ``None`` when they agree, else a one-line reason.
    """
    got, reason = _as_numbers(obtained)
    if got is None:
        return reason
    want = np.asarray(expected)
    if got.shape != want.shape:
        return f"wrong shape: expected {want.shape}, obtained {got.shape}"
    bad = got != want
    if bad.any():
        return _first_difference(want, got, bad)
    if got.dtype.kind not in "iu":
        return (f"right values, but of type {got.dtype}: indices must be integers "
                "(int(...) or .astype(int))")
    return None


# ---------------------------------------------------------------------------------------------
# exercises and their registry


@dataclass(frozen=True, eq=False)
class Case:
    """One call of an exercise's function.

    Attributes
    ----------
    args : tuple
        Positional arguments.
    kwargs : Mapping[str, Any]
        Keyword arguments.
    note : str
        What this case probes, shown when it fails (e.g. ``"halfway between two frames"``).
    """

    args: tuple
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""

    def call(self, function_name: str) -> str:
        """The call as the student would write it, arrays shortened."""
        parts = [_short(a, 80) for a in self.args]
        parts += [f"{k}={_short(v, 80)}" for k, v in self.kwargs.items()]
        return f"{function_name}({', '.join(parts)})"

    def run(self, fn: Callable) -> Any:
        """Call ``fn`` on fresh copies of the arguments (a function may modify its inputs)."""
        return fn(*copy.deepcopy(self.args), **copy.deepcopy(dict(self.kwargs)))


@dataclass(frozen=True, eq=False)
class Exercise:
    """An exercise: the function a student writes, and the cases it is checked on.

    Attributes
    ----------
    name : str
        The exercise's name, which is also the name of the function the student defines.
    chapter : int
        The chapter whose notebook holds the exercise.
    description : str
        One line: what the function computes.
    reference : str
        The reference implementation as ``"module:function"``, imported when needed.
    cases : tuple of Case
        The checks, simplest first (the first failing one is reported).
    compare : Comparison
        ``compare(expected, obtained) -> str | None``; :func:`compare_close` by default.
    """

    name: str
    chapter: int
    description: str
    reference: str
    cases: tuple[Case, ...]
    compare: Comparison = compare_close

    def reference_function(self) -> Callable:
        """The library's implementation of this exercise (imported on first use)."""
        module, _, attribute = self.reference.partition(":")
        return getattr(importlib.import_module(module), attribute)


def register(exercise: Exercise) -> Exercise:
    """Add an exercise to the registry (its name must be new).

    Parameters
    ----------
    exercise : Exercise
        The exercise.

    Returns
    -------
    Exercise
        The same exercise.
    """
    if exercise.name in _REGISTRY:
        raise ValueError(f"an exercise named {exercise.name!r} is already registered")
    if not exercise.cases:
        raise ValueError(f"exercise {exercise.name!r} has no cases")
    _REGISTRY[exercise.name] = exercise
    return exercise


def get(name: str) -> Exercise:
    """The registered exercise called ``name``.

    Raises
    ------
    KeyError
        If there is none; the message lists the known names.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no exercise named {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def all_exercises() -> list[Exercise]:
    """Every registered exercise, by chapter, in the order of registration."""
    return sorted(_REGISTRY.values(), key=lambda exercise: exercise.chapter)


def exercises_for_chapter(chapter: int) -> list[Exercise]:
    """The exercises of one chapter, in the order of registration (empty if it has none)."""
    return [exercise for exercise in _REGISTRY.values() if exercise.chapter == chapter]


# ---------------------------------------------------------------------------------------------
# checking a student's function


@dataclass(frozen=True, eq=False)
class Failure:
    """The first failing case of a check.

    Attributes
    ----------
    index : int
        1-based number of the case; 0 when no case could run (no function to call).
    call : str
        The call, as the student would write it (empty when no case ran).
    note : str
        What the case probes.
    reason : str
        One line: what went wrong.
    expected, obtained : Any
        The reference's and the student's result (``obtained`` is None when it raised).
    error : BaseException or None
        The exception the student's function raised, if it did.
    """

    index: int
    call: str
    note: str
    reason: str
    expected: Any = None
    obtained: Any = None
    error: BaseException | None = None

    @property
    def not_implemented(self) -> bool:
        """Whether the function raised ``NotImplementedError`` (the exercise stub)."""
        return isinstance(self.error, NotImplementedError)


@dataclass(frozen=True, eq=False)
class CheckResult:
    """The outcome of :func:`check`; true if and only if every case passed.

    Attributes
    ----------
    name : str
        The exercise.
    n_passed, n_checks : int
        Cases passed, cases run.
    first_failure : Failure or None
        The first failing case, ``None`` when all passed.
    """

    name: str
    n_passed: int
    n_checks: int
    first_failure: Failure | None

    @property
    def passed(self) -> bool:
        """Whether every case passed."""
        return self.first_failure is None

    def __bool__(self) -> bool:
        return self.passed

    @property
    def message(self) -> str:
        """What :func:`check` prints: one line when passed, the first failing case if not."""
        if self.passed:
            return f"✔ {self.name}: all {self.n_checks} checks passed"
        failure = self.first_failure
        score = f"{self.n_passed} of {self.n_checks} checks passed"
        if failure.index == 0:
            return f"✘ {self.name}: {failure.reason} ({score})"
        if failure.not_implemented and self.n_passed == 0:
            return f"✘ {self.name}: not implemented yet ({score})"
        note = f": {failure.note}" if failure.note else ""
        lines = [f"✘ {self.name}: {score}; the first failing check is #{failure.index}{note}",
                 f"    call:     {failure.call}",
                 f"    expected: {_short(failure.expected)}"]
        if failure.error is None:
            lines.append(f"    obtained: {_short(failure.obtained)}")
        lines.append(f"    problem:  {failure.reason}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """A JSON-serialisable summary: ``name``, ``passed``, ``n_passed``, ``n_checks``, ``message``."""
        return {"name": self.name, "passed": self.passed, "n_passed": self.n_passed,
                "n_checks": self.n_checks, "message": self.message}

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"<CheckResult {self.name}: {self.n_passed}/{self.n_checks} passed>"

    def _ipython_display_(self) -> None:
        """Show nothing in a notebook: :func:`check` has printed the message already."""


def _run_case(exercise: Exercise, index: int, case: Case, fn: Callable) -> Failure | None:
    """Run one case on ``fn``; the failure, or ``None`` when it passed."""
    expected = case.run(exercise.reference_function())
    describe = dict(index=index, call=case.call(exercise.name), note=case.note, expected=expected)
    try:
        obtained = case.run(fn)
    except NotImplementedError as error:
        return Failure(reason="not implemented yet", error=error, **describe)
    except Exception as error:  # noqa: BLE001 -- any error of the student's code is a failed case
        return Failure(reason=f"raised {type(error).__name__}: {error}", error=error, **describe)
    try:
        reason = exercise.compare(expected, obtained)
    except Exception as error:  # noqa: BLE001 -- an exotic result the comparison cannot handle
        reason = f"the result could not be compared ({type(error).__name__}: {error})"
    return None if reason is None else Failure(reason=reason, obtained=obtained, **describe)


def _checked(exercise: Exercise, fn: Any) -> CheckResult:
    """Run every case of ``exercise`` on ``fn`` and collect the result."""
    n_checks = len(exercise.cases)
    if not callable(fn):
        failure = Failure(0, "", "", f"expected a function, got {type(fn).__name__}")
        return CheckResult(exercise.name, 0, n_checks, failure)
    failures = [_run_case(exercise, i, case, fn) for i, case in enumerate(exercise.cases, start=1)]
    failures = [f for f in failures if f is not None]
    return CheckResult(exercise.name, n_checks - len(failures), n_checks,
                       failures[0] if failures else None)


def check(name: str, fn: Callable, *, verbose: bool = True) -> CheckResult:
    """Check a student's function against an exercise's cases (every chapter's exercises).

    Every case runs (so ``n_passed`` counts them all); the message reports the first failing
    one. Errors raised by ``fn`` are caught and reported, never raised, so a notebook runs on;
    ``NotImplementedError`` (the stub the chapter hands out) reads "not implemented yet".

    Parameters
    ----------
    name : str
        The exercise, e.g. ``"log_frequencies"`` (chapter 1).
    fn : Callable
        The student's function.
    verbose : bool
        Print the result's message.

    Returns
    -------
    CheckResult
        True if and only if all cases passed. In a notebook it displays as nothing (the message
        has been printed), so ``check(...)`` can end a cell.

    Raises
    ------
    KeyError
        If no exercise is called ``name`` (a mistake of the chapter, not of the student).
    """
    result = _checked(get(name), fn)
    if verbose:
        print(result.message)
    return result


def check_named(name: str, namespace: Mapping[str, Any], *, verbose: bool = True) -> CheckResult:
    """Check the function called ``name`` in ``namespace`` (what the grader runs per exercise).

    Parameters
    ----------
    name : str
        The exercise, which is also the name of the student's function.
    namespace : Mapping[str, Any]
        Where the student's functions live, e.g. ``globals()`` of the notebook; when ``name``
        is missing from it, every case fails.
    verbose : bool
        Print the result's message.

    Returns
    -------
    CheckResult
        As :func:`check`.
    """
    exercise = get(name)
    if name in namespace:
        result = _checked(exercise, namespace[name])
    else:
        failure = Failure(0, "", "", f"no function named {name!r} is defined")
        result = CheckResult(name, 0, len(exercise.cases), failure)
    if verbose:
        print(result.message)
    return result


def check_chapter(chapter: int, namespace: Mapping[str, Any], *,
                  verbose: bool = True) -> list[CheckResult]:
    """Check every exercise of a chapter on the functions found in ``namespace``.

    Parameters
    ----------
    chapter : int
        The chapter.
    namespace : Mapping[str, Any]
        Where the student's functions live, e.g. ``globals()`` of the notebook; a function
        that is missing fails all its cases.
    verbose : bool
        Print each result's message.

    Returns
    -------
    list of CheckResult
        One per exercise of the chapter, in the order of :func:`exercises_for_chapter`.
    """
    return [check_named(exercise.name, namespace, verbose=verbose)
            for exercise in exercises_for_chapter(chapter)]


# ---------------------------------------------------------------------------------------------
# chapter 1: spectrograms

register(Exercise(
    name="log_frequencies", chapter=1, reference="sheetlab.spectrogram:log_frequencies",
    description="The frequencies fref * 2**(k / bands_per_octave) that lie in [fmin, fmax], "
                "in Hz, increasing (madmom's grid).",
    cases=(
        Case((12, 100.0, 1000.0), note="semitones between 100 Hz and 1 kHz"),
        Case((24, 30.0, 8000.0), note="the talk's setting: quarter tones, 30 Hz to 8 kHz"),
        Case((24, 80.0, 8000.0), note="quarter tones, 80 Hz to 8 kHz"),
        Case((12, 110.0, 1000.0), note="fmin = 110 Hz is a grid point (A2): it is included"),
        Case((24, 27.5, 4200.0), note="fmin = 27.5 Hz is a grid point (A0): it is included"),
        Case((6, 50.0, 5000.0), {"fref": 432.0}, note="another reference frequency (432 Hz)"),
        Case((36, 200.0, 300.0), note="a narrow range at 36 bands per octave"),
    ),
))

register(Exercise(
    name="time_to_frame", chapter=1, reference="sheetlab.spectrogram:time_to_frame",
    description="Index of the frame whose centre is nearest to a time in seconds "
                "(halfway goes to the later frame); int for a scalar, int array for an array.",
    compare=compare_integers,
    cases=(
        Case((1.0, 31.25), note="one second at 31.25 frames per second"),
        Case((0.03, 31.25), note="0.9375 frames: the nearest frame is 1"),
        Case((2.0, 10.0), note="another frame rate"),
        Case((0.016, 31.25), note="exactly halfway (0.5 frames): goes to the later frame, 1"),
        Case((0.08, 31.25), note="exactly halfway (2.5 frames): goes to the later frame, 3"),
        Case((np.array([0.0, 0.1, 0.5, 1.0, 10.0]), 31.25), note="an array of times"),
        Case((np.array([0.0, 0.04, 0.25, 1.96]), 100.0), note="an array at 100 frames per second"),
    ),
))

register(Exercise(
    name="frame_to_time", chapter=1, reference="sheetlab.spectrogram:frame_to_time",
    description="Time in seconds of the centre of a frame (or of an array of frames).",
    cases=(
        Case((31, 31.25), note="frame 31 at 31.25 frames per second"),
        Case((0, 31.25), note="the first frame"),
        Case((25, 100.0), note="another frame rate"),
        Case((np.arange(5), 31.25), note="an array of frames"),
        Case((np.array([10, 20, 300]), 10.0), note="an array at 10 frames per second"),
    ),
))


# ---------------------------------------------------------------------------------------------
# chapter 3: soft targets


def _distribution(n_buckets: int, probabilities: Mapping[int, float]) -> np.ndarray:
    """A ``(n_buckets,)`` vector with the given entries, zeros elsewhere."""
    p = np.zeros(n_buckets)
    p[list(probabilities)] = list(probabilities.values())
    return p


register(Exercise(
    name="soft_targets", chapter=3, reference="sheetlab.targets:soft_targets",
    description="soft_targets(x_px, n_buckets, width_px, spread): the soft target over the "
                "n_buckets buckets of a window width_px wide for a note at window x x_px: "
                "t_k proportional to exp(-(c_k - x)**2 / (2 * (spread * w)**2)) with bucket width "
                "w = width_px / n_buckets and centres c_k = (k + 1/2) * w, normalised to sum to "
                "1; spread = 0 gives the one-hot vector of bucket floor(x / w). A float x gives "
                "shape (n_buckets,), an array of N x gives (N, n_buckets).",
    cases=(
        Case((195.0, 39, 390.0, 0.5), note="a note at the centre of bucket 19"),
        Case((198.0, 39, 390.0, 0.5), note="off-centre: the nearer neighbour gets more"),
        Case((37.0, 10, 100.0, 1.0), note="another window, bucket count and spread"),
        Case((2.0, 39, 390.0, 1.0), note="near the left edge: cut at the window, renormalised"),
        Case((128.0, 39, 390.0, 0.0), note="spread 0: one-hot, in the bucket that holds x"),
        Case((np.array([5.0, 100.0, 389.0]), 39, 390.0, 0.5), note="three notes: one row each"),
        Case((np.array([10.0, 20.0]), 4, 40.0, 2.0), note="a wide spread over four buckets"),
    ),
))

register(Exercise(
    name="localise", chapter=3, reference="sheetlab.targets:localise",
    description="localise(probs, width_px): probability-weighted localisation in a window "
                "width_px wide: with b* the most probable bucket, sum of p_k * c_k over "
                "k in {b*-1, b*, b*+1} (only those that exist) divided by the sum of those "
                "p_k; bucket centres c_k = (k + 1/2) * width_px / B. probs (B,) gives a "
                "number, probs (N, B) an array of N.",
    cases=(
        Case((np.eye(10)[3], 100.0), note="one-hot: the centre of bucket 3"),
        Case((_distribution(10, {5: 0.2, 6: 0.6, 7: 0.2}), 100.0),
             note="symmetric about bucket 6: its centre"),
        Case((_distribution(10, {3: 0.1, 4: 0.4, 5: 0.2, 9: 0.3}), 100.0),
             note="b* = 4: bucket 9 is no neighbour; the three weights are renormalised"),
        Case((_distribution(10, {0: 0.6, 1: 0.2, 9: 0.2}), 100.0),
             note="b* = 0 at the left edge: only its right neighbour (no wrap-around)"),
        Case((_distribution(10, {0: 0.2, 8: 0.1, 9: 0.3}), 100.0),
             note="b* = 9 at the right edge: only its left neighbour"),
        Case((np.stack([_distribution(39, {18: 0.3, 19: 0.5, 20: 0.2}),
                        _distribution(39, {30: 0.5, 31: 0.25, 32: 0.25})]), 390.0),
             note="two distributions over the 39 buckets of a 390 px window"),
    ),
))


# ---------------------------------------------------------------------------------------------
# chapter 4: the multimodal network

register(Exercise(
    name="conv_output_size", chapter=4, reference="sheetlab.models:conv_output_size",
    description="conv_output_size(height, width, n_blocks, stem_stride=1) -> (height, width): "
                "the size of a pathway's feature maps: a 3x3 stem convolution with padding 1 "
                "and stride stem_stride (1: no stem) maps n to (n - 1) // stem_stride + 1, "
                "then each of n_blocks blocks (3x3 convolutions with padding 1, 2x2 max-pool) "
                "maps n to n // 2. Return two integers.",
    compare=compare_integers,
    cases=(
        Case((40, 390, 3), note="the talk's 40 x 390 sheet window, three blocks"),
        Case((136, 40, 3), note="the 136 x 40 spectrogram excerpt"),
        Case((40, 390, 3), {"stem_stride": 2}, note="with a stride-2 stem"),
        Case((112, 390, 3), {"stem_stride": 2}, note="a grand-staff window with a stride-2 stem"),
        Case((195, 41, 0), {"stem_stride": 2}, note="odd sizes: the stem rounds up"),
        Case((7, 9, 1), note="odd sizes: pooling drops the last row and column"),
        Case((40, 390, 4), note="four blocks"),
    ),
))


# ---------------------------------------------------------------------------------------------
# chapter 2: sheet music and its correspondences


def _compare_frames_and_x(expected: Any, obtained: Any) -> str | None:
    """Compare ``(frames, x)`` pairs: integer frames exactly, x within tolerances."""
    if not isinstance(obtained, (tuple, list)) or len(obtained) != 2:
        return (f"expected a tuple (frames, x) of two arrays, obtained "
                f"{type(obtained).__name__}" + (f" of length {len(obtained)}"
                                                if isinstance(obtained, (tuple, list)) else ""))
    reason = compare_integers(expected[0], obtained[0])
    if reason is not None:
        return f"frames: {reason}"
    reason = compare_close(expected[1], obtained[1])
    return None if reason is None else f"x: {reason}"


def _grand_staff_piece() -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """A bar of a grand staff: chords in both hands, performed with asynchrony (seeded)."""
    rng = np.random.default_rng(2)
    score = np.repeat(np.arange(8) * 0.25, 3)  # eight onsets, three notes each
    performed = 1.1 * score + np.where(np.arange(24) % 3 == 0, 0.0, rng.normal(0, 0.02, 24))
    performed = np.clip(performed, 0.0, None)
    x = np.repeat(40.0 + 30.0 * np.arange(8), 3) + rng.uniform(-3, 3, 24)
    order = rng.permutation(24)
    return score[order], performed[order], x[order], 31.25


register(Exercise(
    name="page_to_strip_x", chapter=2, reference="sheetlab.engrave:page_to_strip_x",
    description="page_to_strip_x(page_x, system, system_x0, system_start_x, scale): the strip "
                "x of page points, system_start_x[k] + scale * (page_x - system_x0[k]) with k "
                "each point's system; float for scalars, an array of page_x's shape otherwise.",
    cases=(
        Case((150.0, 0, np.array([100.0]), np.array([0, 500]), 0.4),
             note="one point on the only system"),
        Case((150.0, 1, np.array([100.0, 120.0]), np.array([0, 400, 800]), 0.4),
             note="a point on the second system: its own start and left end"),
        Case((np.array([130.0, 560.0, 131.0, 990.0]), np.array([0, 0, 1, 2]),
              np.array([125.0, 126.0, 124.0]), np.array([0, 350, 700, 1050]), 0.4),
             note="an array of points on three systems"),
        Case((np.array([300.0, 300.0]), np.array([1, 0]), np.array([100.0, 200.0]),
              np.array([0.0, 600.0]), 1.0),
             note="system_start_x without the strip's width; scale 1"),
        Case((np.array([[110.0, 220.0], [330.0, 440.0]]), np.array([[0, 0], [1, 1]]),
              np.array([100.0, 100.0]), np.array([0, 200, 400]), 0.5),
             note="a 2-D array of points keeps its shape"),
        Case((90.0, 0, np.array([100.0]), np.array([0, 500]), 0.4),
             note="left of the staff lines: the same line, extended (negative x)"),
    ),
))

register(Exercise(
    name="correspondences", chapter=2, reference="sheetlab.dataset:correspondences",
    description="correspondences(score_onset_s, performed_onset_s, note_x, fps) -> (frames, x): "
                "one entry per distinct score onset, in increasing score onset: the frame "
                "floor(fps * t + 0.5) of the earliest performed onset t of its notes (int "
                "array), and the mean note_x of its notes (float array).",
    compare=_compare_frames_and_x,
    cases=(
        Case((np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.5, 1.0]), np.array([10.0, 20.0, 30.0]),
              31.25), note="three single notes, played as written"),
        Case((np.array([0.0, 0.0, 0.5]), np.array([0.02, 0.0, 0.5]),
              np.array([10.0, 14.0, 30.0]), 31.25),
             note="a chord: one correspondence, mean x, frame of the earliest onset"),
        Case((np.array([0.0, 0.0, 0.5, 0.5]), np.array([0.0, 0.01, 0.64, 0.6]),
              np.array([10.0, 10.0, 30.0, 32.0]), 31.25),
             note="the note listed first in a chord is not always the first to sound"),
        Case((np.array([1.0, 0.0, 0.5]), np.array([1.6, 0.0, 0.8]), np.array([30.0, 10.0, 20.0]),
              100.0), note="notes out of order: the result is in score order"),
        Case((np.array([0.0, 0.25, 0.5]), np.array([0.016, 0.08, 0.5]),
              np.array([5.0, 15.0, 25.0]), 31.25),
             note="onsets exactly halfway between frames go to the later frame"),
        Case(_grand_staff_piece(), note="a bar of chords in both hands, with asynchrony, shuffled"),
    ),
))


# ---------------------------------------------------------------------------------------------
# chapter 5: following a score

register(Exercise(
    name="tracking_ratio", chapter=5, reference="sheetlab.following:tracking_ratio",
    description="tracking_ratio(errors_px, window_px): the share of a piece's onsets before the "
                "follower is first lost, k / n with k the index of the first onset whose "
                "absolute error exceeds window_px / 3 (an error of exactly a third is not "
                "lost) and n the number of onsets; 1.0 if no onset is lost. errors_px (n,) "
                "are the signed errors pred_x - true_x in score order.",
    cases=(
        Case((np.array([0.0, 5.0, -10.0, 20.0]), 390), note="never lost: the whole piece"),
        Case((np.array([0.0, 4.0, -8.0, 200.0, 0.0, 0.0, 3.0, 1.0]), 390),
             note="lost at onset 3 of 8: the three onsets before it count"),
        Case((np.array([5.0, -3.0, -150.0, 2.0, 0.0]), 390),
             note="lost behind the music: a negative error counts by its size"),
        Case((np.array([0.0, 100.0, -100.0, 50.0, 101.0, 0.0]), 300),
             note="an error of exactly a third (100 px of 300) is not lost; 101 px is"),
        Case((np.array([0.0, 0.0, 200.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]), 390),
             note="found again after the loss: what follows the first loss does not count"),
        Case((np.array([0.0, 10.0, 150.0, 0.0]), 390),
             note="150 px: more than a third (130 px) but less than half (195 px) of 390"),
        Case((np.array([0.0, 150.0, 250.0, 0.0, 0.0]), 600),
             note="a 600 px window: lost only above 200 px"),
        Case((np.array([300.0, 0.0, 0.0]), 390), note="lost at the first onset: ratio 0"),
        Case((np.array([0.0, 0.0, 0.0, 0.0, -140.0]), 390), note="lost at the last onset"),
        Case((np.array([7.0]), 390), note="a single onset, not lost"),
    ),
))


# ---------------------------------------------------------------------------------------------
# chapter 6: looking inside, guided back-propagation


def _guided_relu_case(seed: int, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``(x, grad_out)`` of one shape, seeded: normal values with some exact zeros in both."""
    rng = np.random.default_rng(seed)
    x, grad_out = rng.normal(size=shape), rng.normal(size=shape)
    x[rng.random(shape) < 0.1] = 0.0
    grad_out[rng.random(shape) < 0.1] = 0.0
    return x, grad_out


register(Exercise(
    name="guided_relu_backward", chapter=6, reference="sheetlab.saliency:guided_relu_backward",
    description="guided_relu_backward(x, grad_out): the error signal a ReLU passes back in "
                "guided back-propagation, grad_out * [x > 0] * [grad_out > 0]: grad_out where "
                "both the forward input x and grad_out are positive, 0 elsewhere; x and "
                "grad_out are arrays of one shape, the result has that shape.",
    cases=(
        Case((np.array([1.0, 2.0, 3.0]), np.array([0.5, 1.5, 4.0])),
             note="everything positive: the error signal passes unchanged"),
        Case((np.array([2.0, -1.0, 3.0, -2.0]), np.array([1.0, 1.0, -1.0, -1.0])),
             note="all four sign combinations of (x, grad_out)"),
        Case((np.array([0.0, 0.0, 1.0, 1.0]), np.array([2.0, -2.0, 0.0, 3.0])),
             note="x = 0 is not positive: nothing passes there (nor where grad_out = 0)"),
        Case((np.array([3.0, 0.5, 2.0]), np.array([-1.0, -0.25, -3.0])),
             note="only negative error signals: nothing passes"),
        Case((np.array([-3.0, -0.5, 4.0, 0.1]), np.array([2.0, 0.25, 3.0, 7.0])),
             note="only positive error signals: the ordinary ReLU gradient"),
        Case((np.array([[0.2, -0.4, 1.3], [2.0, 0.7, -0.1]]),
              np.array([[-0.6, 0.9, 2.5], [0.3, -1.1, 0.8]])),
             note="a 2-D array (a feature map) keeps its shape"),
        Case(_guided_relu_case(6, (2, 3, 4, 5)),
             note="a random batch of feature maps (2, 3, 4, 5), with exact zeros"),
    ),
))


# ---------------------------------------------------------------------------------------------
# chapter 7: recurrent networks


def _gru_case(seed: int, batch: tuple[int, ...], n_in: int, n_hidden: int,
              scale: float = 1.0) -> tuple[np.ndarray, ...]:
    """Arguments of ``gru_step``: inputs, states and weights of a GRU drawn from a seed."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(*batch, n_in)), np.tanh(rng.normal(size=(*batch, n_hidden))),
            scale * rng.normal(size=(3 * n_hidden, n_in)),
            scale * rng.normal(size=(3 * n_hidden, n_hidden)),
            scale * rng.normal(size=3 * n_hidden), scale * rng.normal(size=3 * n_hidden))


register(Exercise(
    name="gru_step", chapter=7, reference="sheetlab.recurrent:gru_step",
    description="gru_step(x, h, weight_ih, weight_hh, bias_ih, bias_hh): one step of a GRU as "
                "torch.nn.GRU computes it. The weights (3H, D), (3H, H) and biases (3H,) stack "
                "the reset gate r, the update gate z and the new state n, H rows each: "
                "r = sigmoid(W_ir x + b_ir + W_hr h + b_hr), z = sigmoid(W_iz x + b_iz + W_hz h "
                "+ b_hz), n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), "
                "h' = (1 - z) * n + z * h. x (..., D) and h (..., H) give h' (..., H).",
    cases=(
        Case(_gru_case(0, (), 3, 2), note="one input of 3 values, a state of 2"),
        Case(_gru_case(1, (4,), 5, 3), note="a batch of 4"),
        Case((np.zeros(2), np.array([0.5, -0.5]), np.zeros((6, 2)), np.zeros((6, 2)),
              np.zeros(6), np.zeros(6)),
             note="all weights zero: both gates are 1/2, n = 0, so h' = h / 2"),
        Case((np.ones(2), np.zeros(1), np.zeros((3, 2)), np.zeros((3, 1)),
              np.array([0.0, -30.0, 1.0]), np.array([0.0, 0.0, 0.0])),
             note="z = sigmoid(-30) ~ 0: the new state n = tanh(1) replaces h"),
        Case((np.ones(2), np.array([0.3]), np.zeros((3, 2)), np.zeros((3, 1)),
              np.array([0.0, 30.0, 1.0]), np.zeros(3)),
             note="z ~ 1: the state is kept"),
        Case((np.zeros(1), np.array([1.0]), np.zeros((3, 1)), np.array([[0.0], [0.0], [2.0]]),
              np.array([-30.0, -30.0, 0.0]), np.array([0.0, 0.0, 1.0])),
             note="r ~ 0 shuts W_hn h + b_hn out of n, bias included"),
        Case(_gru_case(2, (2, 3), 4, 5, scale=0.5), note="a (2, 3) batch, smaller weights"),
    ),
))


# ---------------------------------------------------------------------------------------------
# chapter 8: hidden Markov models

register(Exercise(
    name="forward_step", chapter=8, reference="sheetlab.hmm:forward_step",
    description="forward_step(belief, kernel, likelihood): one step of the HMM's forward filter. "
                "Predict: move the belief (n,) by the tempo prior, kernel[j] being the "
                "probability of a step of j - 1 states (kernel[0]: one back, kernel[1]: stay, "
                "kernel[k + 1]: k forward); mass that would leave the states stays at the "
                "first or the last state. Update: multiply by the likelihood (n,) and "
                "normalise to sum 1.",
    cases=(
        Case((np.array([0.0, 1.0, 0.0, 0.0, 0.0]), np.array([0.0, 0.5, 0.5]), np.ones(5)),
             note="a flat likelihood: only the prediction, half stays, half moves one on"),
        Case((np.array([0.0, 0.0, 1.0, 0.0, 0.0, 0.0]), np.array([0.1, 0.4, 0.3, 0.2]),
              np.ones(6)),
             note="one back, stay, one and two forward: which entry moves where"),
        Case((np.array([0.2, 0.3, 0.5, 0.0]), np.array([0.0, 0.6, 0.4]),
              np.array([1.0, 2.0, 1.0, 4.0])),
             note="the update: weight by the likelihood and normalise"),
        Case((np.array([0.0, 0.0, 0.25, 0.75]), np.array([0.0, 0.5, 0.25, 0.25]), np.ones(4)),
             note="mass that would move past the last state stays on it"),
        Case((np.array([0.7, 0.3, 0.0, 0.0]), np.array([0.2, 0.7, 0.1]), np.ones(4)),
             note="mass that would move back before the first state stays on it"),
        Case((np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.05, 0.8, 0.15]),
              np.array([0.001, 0.5, 0.001, 0.001])),
             note="a sharp likelihood: most of the belief lands on state 1"),
        Case((np.array([0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
              np.array([0.0, 0.2, 0.2, 0.2, 0.2, 0.2]),
              np.array([5.0, 1.0, 1.0, 3.0, 1.0, 2.0, 1.0, 1.0])),
             note="jumps of up to four states forward, an unnormalised likelihood"),
        Case((np.array([1.0]), np.array([0.1, 0.8, 0.1]), np.array([0.3])),
             note="a single state keeps all the belief"),
    ),
))


# ---------------------------------------------------------------------------------------------
# chapter 9: cross-modal retrieval


def _unit_rows(seed: int, n: int, d: int, noise: float | None = None,
               base: np.ndarray | None = None) -> np.ndarray:
    """``(n, d)`` unit vectors drawn from a seed (near ``base`` when a noise level is given)."""
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(n, d)) if base is None else base + noise * rng.normal(size=(n, d))
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _similarities(seed: int, n: int, match_boost: float) -> np.ndarray:
    """An ``(n, n)`` asymmetric similarity matrix whose diagonal is raised by ``match_boost``."""
    rng = np.random.default_rng(seed)
    return np.round(rng.uniform(-1, 1, size=(n, n)) + match_boost * np.eye(n), 2)


register(Exercise(
    name="recall_and_mrr", chapter=9, reference="sheetlab.retrieval:recall_and_mrr",
    description="recall_and_mrr(sim, k): sim (N, N) holds the similarity of query i (row) to "
                "candidate j (column), and candidate i is query i's one right answer. The rank "
                "of the match is 1 + the number of candidates strictly more similar than it "
                "(a tie counts in the match's favour). Return (recall, mrr): the share of "
                "queries whose match ranks <= k, and the mean of 1 / rank.",
    cases=(
        Case((np.eye(3), 1), note="every match is the most similar: (1.0, 1.0)"),
        Case((np.array([[0.9, 0.1, 0.2], [0.8, 0.5, 0.6], [0.3, 0.2, 0.7]]), 1),
             note="query 1's match is beaten by two candidates: rank 3"),
        Case((np.array([[0.9, 0.1, 0.2], [0.8, 0.5, 0.6], [0.3, 0.2, 0.7]]), 3),
             note="k = N: every match is within the k nearest"),
        Case((np.array([[0.5, 0.5, 0.1], [0.2, 0.4, 0.4], [0.6, 0.6, 0.6]]), 1),
             note="ties with wrong candidates count in the match's favour: all ranks 1"),
        Case((np.array([[0.1, 0.9, 0.8, 0.0], [0.0, 0.2, 0.9, 0.1], [0.3, 0.1, 0.5, 0.4],
                        [0.9, 0.0, 0.0, 0.3]]), 2),
             note="rows are queries: the matrix is not symmetric"),
        Case((np.array([[-0.2, -0.9, -0.1], [-0.5, -0.3, -0.8], [-0.7, -0.6, -0.4]]), 1),
             note="higher similarity is nearer, even when all are negative"),
        Case((_similarities(0, 12, 0.8), 5), note="12 random queries, k = 5"),
        Case((_similarities(1, 30, 0.5), 10), note="30 random queries, k = 10"),
    ),
))


register(Exercise(
    name="pairwise_ranking_loss", chapter=9, reference="sheetlab.retrieval:pairwise_ranking_loss",
    description="pairwise_ranking_loss(x, y, margin): x and y (N, d) are unit vectors, row i of "
                "x matches row i of y, s(i, j) = x_i . y_j. Sum, over every i and every j != i, "
                "max(0, margin - s(i, i) + s(i, j)) (query x_i, wrong y_j) and "
                "max(0, margin - s(i, i) + s(j, i)) (query y_i, wrong x_j); divide by N.",
    cases=(
        Case((np.eye(3), np.eye(3), 0.5),
             note="orthogonal pairs, margin 0.5 < 1: every wrong item is far enough, loss 0"),
        Case((np.eye(3), np.eye(3), 1.5),
             note="margin 1.5: each of the 2 x 6 wrong (query, item) pairs costs 0.5"),
        Case((np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[0.6, 0.8], [0.0, 1.0]]), 0.3),
             note="query x_0 finds y_1 more similar than y_0; query y_1 does not"),
        Case((np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]),
              np.array([[0.8, 0.6], [1.0, 0.0], [0.0, 1.0]]), 0.2),
             note="the two directions differ: s(i, j) is not s(j, i)"),
        Case((_unit_rows(0, 5, 4), _unit_rows(1, 5, 4), 0.7), note="unrelated pairs, margin 0.7"),
        Case((_unit_rows(2, 8, 6), _unit_rows(3, 8, 6, 0.3, _unit_rows(2, 8, 6)), 0.4),
             note="8 noisy pairs in 6-d, margin 0.4"),
        Case((_unit_rows(4, 6, 3), _unit_rows(5, 6, 3, 0.2, _unit_rows(4, 6, 3)), 0.0),
             note="margin 0: only wrong items more similar than the match cost"),
    ),
))
