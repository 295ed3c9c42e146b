"""One BLAS thread for the compression's small dense linear algebra.

Once TensorFlow is imported, OpenBLAS's worker threads and TensorFlow's
thread pools compete for the cores: measured on 2 cores, one SVD of a
256 x 256 matrix (an ITQ round) takes 1.5 s with OpenBLAS's default
threads and 0.018 s with one, so ITQ's 50 rounds took 65-135 s inside
`grok-tf compress` instead of 1-4 s. The matrices here (a few thousand
rows, a few hundred columns) gain nothing from more threads.
"""

from threadpoolctl import threadpool_limits


def single_threaded_blas():
    """A context manager running NumPy's BLAS / LAPACK on one thread.

    `threadpoolctl` (a dependency of scikit-learn) sets the limit of every
    loaded BLAS library and restores it on exit.

    Returns:
        a context manager.

    Example:

    >>> import numpy as np
    >>> with single_threaded_blas():
    ...     _ = np.linalg.svd(np.eye(4))
    """
    return threadpool_limits(limits=1, user_api="blas")
