"""numpy's BLAS on one thread where sheetlab runs torch beside it: inside the context, in the
followers' eval block and in the spectrogram's filterbank product, and restored after."""

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from sheetlab import spectrogram as sp
from sheetlab.following import evaluating
from sheetlab.threads import one_blas_thread


def blas_threads() -> set[int]:
    """The thread counts of every BLAS library numpy and scipy loaded."""
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


@pytest.fixture
def two_blas_threads():
    """Run the test with every BLAS library set to two threads, so that one is a change."""
    np.ones((2, 2)) @ np.ones((2, 2))  # numpy's BLAS is loaded
    if not blas_threads():
        pytest.skip("numpy reports no BLAS library to threadpoolctl")
    with threadpool_limits(limits=2, user_api="blas"):
        assert blas_threads() == {2}
        yield


def test_one_blas_thread_inside_and_the_threads_back_after(two_blas_threads):
    with one_blas_thread():
        assert blas_threads() == {1}
    assert blas_threads() == {2}


def test_the_followers_eval_block_runs_blas_on_one_thread(two_blas_threads):
    model = torch.nn.Linear(2, 2).train()
    with evaluating(model):
        assert blas_threads() == {1}
        assert not model.training and not torch.is_grad_enabled()
    assert blas_threads() == {2} and model.training


def test_the_filterbank_product_runs_on_one_thread(two_blas_threads, monkeypatch):
    seen = []
    chunks = sp._magnitude_chunks

    def recording(*args):
        for chunk in chunks(*args):
            seen.append(blas_threads())
            yield chunk

    monkeypatch.setattr(sp, "_magnitude_chunks", recording)
    signal = np.sin(2 * np.pi * 440 * np.arange(sp.SAMPLE_RATE) / sp.SAMPLE_RATE)
    spec = sp.log_spectrogram(signal.astype(np.float32))
    assert seen and all(threads == {1} for threads in seen)
    assert blas_threads() == {2}
    # the same numbers as with two threads
    monkeypatch.setattr(sp, "one_blas_thread", lambda: threadpool_limits(limits=2, user_api="blas"))
    np.testing.assert_array_equal(sp.log_spectrogram(signal.astype(np.float32)), spec)
