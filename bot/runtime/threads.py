"""Native thread pools (OpenMP, OpenBLAS, MKL) for latency-bound services.

The consumer and the receiver predict one small batch at a time, from worker threads. There, a
thread pool per call costs far more than it saves: a one-row gradient-boosting prediction is about
70x faster with one native thread (bench/predict.py --threads 1). Training keeps every core.
"""

from __future__ import annotations

import os

NATIVE_POOL_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def single_native_thread() -> None:
    """One native thread per call, unless the operator set the variables; call before sklearn."""
    for name in NATIVE_POOL_VARIABLES:
        os.environ.setdefault(name, "1")
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=int(os.environ["OMP_NUM_THREADS"]))
