"""The exercise checks: references pass, stubs and plausible wrong answers fail, nothing raises."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from exercise_wrong import WRONG
from sheetlab import exercises
from sheetlab.exercises import Case, Exercise, check, check_chapter

EXERCISES = exercises.all_exercises()
NAMES = [exercise.name for exercise in EXERCISES]
WRONG_CASES = [pytest.param(name, fn, id=f"{name}-{fn.__name__}")
               for name, fns in WRONG.items() for fn in fns]


def _stub(*args, **kwargs):
    raise NotImplementedError


def _broken(*args, **kwargs):
    raise ValueError("boom")


def test_chapter_1_has_its_exercises():
    assert [e.name for e in exercises.exercises_for_chapter(1)] == [
        "log_frequencies", "time_to_frame", "frame_to_time"]


@pytest.mark.parametrize("name", NAMES)
def test_registry_entry_is_complete(name):
    exercise = exercises.get(name)
    assert exercise.name == name
    assert isinstance(exercise.chapter, int) and exercise.description
    assert exercise in exercises.exercises_for_chapter(exercise.chapter)
    assert callable(exercise.reference_function())


@pytest.mark.parametrize("name", NAMES)
def test_reference_passes(name, capsys):
    result = check(name, exercises.get(name).reference_function())
    assert result and result.passed and result.first_failure is None
    assert result.n_passed == result.n_checks == len(exercises.get(name).cases)
    assert capsys.readouterr().out == f"✔ {name}: all {result.n_checks} checks passed\n"


@pytest.mark.parametrize("name", NAMES)
def test_stub_is_not_implemented(name, capsys):
    result = check(name, _stub)
    assert not result and result.n_passed == 0
    assert result.first_failure.not_implemented
    assert capsys.readouterr().out.strip() == (
        f"✘ {name}: not implemented yet (0 of {result.n_checks} checks passed)")


@pytest.mark.parametrize("name", NAMES)
def test_other_exceptions_fail_without_raising(name, capsys):
    result = check(name, _broken)
    out = capsys.readouterr().out
    assert not result and result.n_passed == 0
    assert "raised ValueError: boom" in out
    assert exercises.get(name).cases[0].call(name) in out


@pytest.mark.parametrize("name", NAMES)
def test_not_a_function_fails(name, capsys):
    result = check(name, None)
    assert not result and "expected a function, got NoneType" in capsys.readouterr().out


@pytest.mark.parametrize("name", NAMES)
def test_every_exercise_has_a_wrong_implementation(name):
    assert WRONG.get(name), f"add a plausible wrong {name} to tests/exercise_wrong.py"


@pytest.mark.parametrize("name, fn", WRONG_CASES)
def test_wrong_implementation_fails(name, fn, capsys):
    result = check(name, fn)
    out = capsys.readouterr().out
    assert not result and result.n_passed < result.n_checks
    failure = result.first_failure
    assert failure.call in out and f"#{failure.index}" in out and failure.reason in out


@pytest.mark.parametrize("name", NAMES)
def test_message_names_the_first_failing_case(name, capsys):
    """A function that is right except on the last case: exactly that case is reported."""
    exercise = exercises.get(name)
    reference = exercise.reference_function()
    last = len(exercise.cases) - 1
    calls = itertools.count()

    def wrong_on_last_call(*args, **kwargs):
        result = reference(*args, **kwargs)
        return result + 1 if next(calls) == last else result

    result = check(name, wrong_on_last_call)
    out = capsys.readouterr().out
    assert result.n_passed == result.n_checks - 1
    assert result.first_failure.index == last + 1
    assert exercise.cases[last].call(name) in out and exercise.cases[last].note in out


def test_float_indices_are_rejected_with_a_hint(capsys):
    assert not check("time_to_frame", lambda t, fps: np.floor(np.asarray(t) * fps + 0.5))
    assert "indices must be integers" in capsys.readouterr().out


def test_missing_return_gets_a_hint(capsys):
    assert not check("frame_to_time", lambda frame, fps: None)
    assert "returned None" in capsys.readouterr().out


def test_inputs_modified_by_the_student_do_not_leak():
    def time_to_frame_in_place(time_s, fps):
        if isinstance(time_s, np.ndarray):
            time_s *= fps
            time_s += 0.5
            return np.floor(time_s, out=time_s).astype(np.int64)
        return int(np.floor(time_s * fps + 0.5))

    assert check("time_to_frame", time_to_frame_in_place, verbose=False)


def test_check_chapter_scores_a_namespace(capsys):
    namespace = {"time_to_frame": exercises.get("time_to_frame").reference_function(),
                 "frame_to_time": _stub}
    results = check_chapter(1, namespace)
    out = capsys.readouterr().out
    assert [r.name for r in results] == ["log_frequencies", "time_to_frame", "frame_to_time"]
    assert [r.passed for r in results] == [False, True, False]
    assert results[0].n_passed == 0 and results[0].n_checks == len(exercises.get("log_frequencies").cases)
    assert "no function named 'log_frequencies' is defined" in out
    assert results[0].to_dict() == {"name": "log_frequencies", "passed": False, "n_passed": 0,
                                    "n_checks": results[0].n_checks, "message": results[0].message}


def test_unknown_exercise_is_an_author_error():
    with pytest.raises(KeyError, match="known: .*log_frequencies"):
        check("log_frequency", abs)


def test_register_rejects_duplicates_and_empty_exercises():
    duplicate = Exercise("time_to_frame", 1, "again", "sheetlab.spectrogram:time_to_frame",
                         (Case((1.0, 31.25)),))
    with pytest.raises(ValueError, match="already registered"):
        exercises.register(duplicate)
    with pytest.raises(ValueError, match="no cases"):
        exercises.register(Exercise("nothing", 1, "", "sheetlab.spectrogram:time_to_frame", ()))
