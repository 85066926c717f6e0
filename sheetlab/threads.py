"""numpy's BLAS kept to one thread beside torch (chapters 5 and 8).

numpy's matrix products run on a BLAS library (OpenBLAS in the wheels) with its own pool of
worker threads, beside torch's. After a product that used them, the workers keep spinning for
a while before they sleep (OpenBLAS 0.3 here: some tens of milliseconds). On a machine with
few cores they then hold the cores that torch's convolutions, started right after, need. On
two cores, two batches of a 16-channel convolution took 32-65 ms when started within 30 ms of
a product on two BLAS threads (400 × 1024 by 1024 × 136), against 16 ms after the same
product on one. Following K. 545 from its audio (the spectrogram's filterbank product, then
the followers' pathways and heads; paired runs, medians of 9) took 0.44 s with the HMM and
0.39 s frame-wise with numpy's default two BLAS threads, and 0.38 s and 0.30 s with one, with
bit-identical results. The products involved are small (a filterbank, a few rows through a
dense layer): on their own they take at most 10-15 % longer on one thread (the spectrogram
of 60 s of audio: 44 ms against 40 ms), and nothing spins after them.
"""

from __future__ import annotations

from threadpoolctl import threadpool_limits


def one_blas_thread() -> threadpool_limits:
    """Run numpy's BLAS on the calling thread only, within a ``with`` block.

    Torch's own thread pool is not touched; on leaving the block the BLAS libraries get back
    the threads they had.

    Returns
    -------
    threadpoolctl.threadpool_limits
        A context manager.
    """
    return threadpool_limits(limits=1, user_api="blas")
