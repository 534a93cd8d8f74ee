"""Data drift: the rows production was asked about, against the data that trained the model.

Two measures per feature, both standard and both explainable in a classroom:

- the population stability index (PSI) over ten bins cut at the reference's deciles:
  sum((cur - ref) * ln(cur / ref)) over the bins' shares. Under 0.1 is usually read as
  stable, 0.1 to 0.25 as a moderate shift, over 0.25 as a large one;
- the two-sample Kolmogorov-Smirnov test (SciPy's `ks_2samp`): the largest gap between the
  two empirical distributions, and how likely a gap that large is if nothing changed.

A feature drifts when both agree: its PSI reaches the threshold *and* the test rejects
"same distribution" at the chosen level. PSI alone over-reacts on small windows (a few
rows in a thin bin), the test alone flags shifts too small to matter on large ones.
The window drifts when at least `min_features` features do.

SciPy rather than a monitoring suite (Evidently, NannyML): it already ships with
scikit-learn, so the check adds nothing to the images, and every number it prints can be
recomputed by hand from the JSON report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

BINS = 10
# Shares are floored so that an empty bin on one side gives a large, finite PSI.
MIN_SHARE = 1e-4


class DriftError(ValueError):
    """The comparison cannot be made (too few rows, no reference); the message says why."""


@dataclass(frozen=True)
class Thresholds:
    psi: float = 0.2
    ks_alpha: float = 0.001
    min_rows: int = 100
    min_features: int = 1

    def __post_init__(self) -> None:
        if self.psi <= 0:
            raise ValueError(f"the PSI threshold must be positive, got {self.psi}")
        if not 0 < self.ks_alpha < 1:
            raise ValueError(f"the test's level must be between 0 and 1, got {self.ks_alpha}")
        if self.min_rows < 2:
            raise ValueError(f"the window needs at least 2 rows to compare, got {self.min_rows}")
        if self.min_features < 1:
            raise ValueError(f"min_features must be at least 1, got {self.min_features}")


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    psi: float
    ks_statistic: float
    ks_pvalue: float
    reference_mean: float
    current_mean: float
    reference_std: float
    current_std: float
    drifted: bool
    # Shares of rows per bin (cut at the reference's deciles), for the report's plots.
    edges: list[float] = field(default_factory=list)
    reference_shares: list[float] = field(default_factory=list)
    current_shares: list[float] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "feature": self.feature,
            "psi": round(self.psi, 6),
            "ks_statistic": round(self.ks_statistic, 6),
            "ks_pvalue": float(f"{self.ks_pvalue:.6g}"),
            "reference_mean": round(self.reference_mean, 6),
            "current_mean": round(self.current_mean, 6),
            "reference_std": round(self.reference_std, 6),
            "current_std": round(self.current_std, 6),
            "drifted": self.drifted,
            "edges": [round(e, 6) for e in self.edges],
            "reference_shares": [round(s, 6) for s in self.reference_shares],
            "current_shares": [round(s, 6) for s in self.current_shares],
        }


@dataclass(frozen=True)
class Comparison:
    features: list[FeatureDrift]
    reference_rows: int
    current_rows: int
    thresholds: Thresholds

    @property
    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]

    @property
    def drifted(self) -> bool:
        return len(self.drifted_features) >= self.thresholds.min_features

    @property
    def mean_psi(self) -> float:
        return float(np.mean([f.psi for f in self.features])) if self.features else 0.0


def bin_edges(reference: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Inner cut points at the reference's quantiles, repeated values merged."""
    qs = np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(qs)


def shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of `values` in each bin: (-inf, e0], (e0, e1], ..., (e_last, inf)."""
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    return counts / max(len(values), 1)


def psi(reference: np.ndarray, current: np.ndarray, bins: int = BINS) -> float:
    """Population stability index of `current` against `reference`."""
    edges = bin_edges(reference, bins)
    ref = np.maximum(shares(reference, edges), MIN_SHARE)
    cur = np.maximum(shares(current, edges), MIN_SHARE)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _clean(name: str, values, side: str) -> np.ndarray:
    arr = np.asarray(values, dtype="float64").ravel()
    arr = arr[np.isfinite(arr)]
    if len(arr) == 0:
        raise DriftError(f"feature {name!r} has no numeric values in the {side}")
    return arr


def compare_feature(
    name: str, reference, current, thresholds: Thresholds = Thresholds()
) -> FeatureDrift:
    from scipy.stats import ks_2samp

    ref = _clean(name, reference, "reference")
    cur = _clean(name, current, "captured window")
    edges = bin_edges(ref)
    value = psi(ref, cur)
    test = ks_2samp(ref, cur)
    pvalue = float(test.pvalue)
    if math.isnan(pvalue):  # both constant and equal: nothing moved
        pvalue = 1.0
    return FeatureDrift(
        feature=name,
        psi=value,
        ks_statistic=float(test.statistic),
        ks_pvalue=pvalue,
        reference_mean=float(ref.mean()),
        current_mean=float(cur.mean()),
        reference_std=float(ref.std()),
        current_std=float(cur.std()),
        drifted=value >= thresholds.psi and pvalue < thresholds.ks_alpha,
        edges=[float(e) for e in edges],
        reference_shares=[float(s) for s in shares(ref, edges)],
        current_shares=[float(s) for s in shares(cur, edges)],
    )


def compare(
    reference: Mapping[str, np.ndarray],
    current: Mapping[str, np.ndarray],
    thresholds: Thresholds = Thresholds(),
) -> Comparison:
    """Every reference feature, compared with the captured window's column of that name."""
    if not reference:
        raise DriftError("the reference profile names no features")
    missing = [f for f in reference if f not in current]
    if missing:
        raise DriftError(f"the captured rows lack the model's features: {', '.join(missing)}")
    n_current = min(len(np.asarray(current[f]).ravel()) for f in reference)
    if n_current < thresholds.min_rows:
        raise DriftError(
            f"the captured window holds {n_current} rows and the check needs at least "
            f"{thresholds.min_rows}: send more traffic (make traffic) and run it again"
        )
    features = [compare_feature(f, reference[f], current[f], thresholds) for f in reference]
    n_reference = min(len(np.asarray(reference[f]).ravel()) for f in reference)
    return Comparison(features, n_reference, n_current, thresholds)
