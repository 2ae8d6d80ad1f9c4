"""Out-of-distribution check: squared Mahalanobis distance to the training inputs.

Training summarises the scaled, flattened training inputs (`ood_summary`); the predictor flags an
input whose distance exceeds the summary's threshold (`ood_distances`) and answers `hold`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from bot.core.bundle import OodSummary

FloatArray = NDArray[np.float64]
OOD_QUANTILE = 0.999


def ood_summary(scaled: FloatArray, *, quantile: float = OOD_QUANTILE) -> OodSummary:
    """Mean, Ledoit-Wolf regularised precision, and the `quantile` of the training inputs' own
    squared distances as the threshold (so about `1 - quantile` of training inputs are flagged)."""
    from sklearn.covariance import LedoitWolf

    data = np.asarray(scaled, dtype=np.float64)
    estimate = LedoitWolf().fit(data)
    mean = np.asarray(estimate.location_, dtype=np.float64)
    precision = np.asarray(estimate.precision_, dtype=np.float64)
    distances = ood_distances(data, mean, precision)
    return OodSummary(
        mean=mean, precision=precision, threshold=float(np.quantile(distances, quantile))
    )


def ood_distances(scaled: FloatArray, mean: FloatArray, precision: FloatArray) -> FloatArray:
    """Squared Mahalanobis distance of each row of `scaled` to `mean`."""
    centred = scaled - mean
    return np.asarray(np.einsum("ij,ij->i", centred @ precision, centred), dtype=np.float64)
