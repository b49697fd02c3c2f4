"""The Normal-Inverse-Wishart hyperparameters shared by NIWGaussian and GaussianMixture.

Both models are frozen dataclasses with the fields ``m0``, ``kappa0``, ``nu0`` and ``S0`` (None =
filled from the data) and take (N, D) real observations. :class:`NIWHyperparameters` validates
those fields, says which D they fix, resolves the parts of a data-driven prior the two models
resolve alike, and checks observations against the model (:class:`GaussianData`), so that none of
it is written twice.
"""

from __future__ import annotations

import numpy as np

from ..core.base import as_tuple, check_positive, check_spd, numeric_array
from .data import GaussianData

__all__ = ["NIWHyperparameters"]


def check_vector_hyperparameter(value, name: str) -> np.ndarray:
    array = numeric_array(value, name, "a 1-D array of numbers")
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of shape (D,), got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return array


def check_spd_hyperparameter(value, name: str, dim: int | None = None) -> np.ndarray:
    """A symmetric positive-definite (D, D) matrix, or a ValueError/TypeError naming ``name``."""
    array = numeric_array(value, name, "a (D, D) array of numbers")
    if array.ndim != 2 or array.shape[0] != array.shape[1] or array.shape[0] == 0:
        raise ValueError(f"{name} must be a square (D, D) matrix, got shape {array.shape}")
    if dim is not None and array.shape[0] != dim:
        raise ValueError(f"{name} must have shape ({dim}, {dim}) to match D = {dim}, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite")
    return check_spd(array, name)


class NIWHyperparameters:
    """The Normal-Inverse-Wishart hyperparameters ``m0``, ``kappa0``, ``nu0``, ``S0`` shared by
    :class:`~latentzoo.models.gaussian.niw.NIWGaussian` and
    :class:`~latentzoo.models.mixture.gaussian.GaussianMixture`
    (dataclass fields of those classes; None = filled from the data)."""

    def _check_niw_hyperparameters(self) -> None:
        """Validate and freeze the hyperparameters (call from ``__post_init__``)."""
        dim = None
        if self.m0 is not None:
            m0 = check_vector_hyperparameter(self.m0, "m0")
            dim = m0.size
            object.__setattr__(self, "m0", as_tuple(m0))
        object.__setattr__(self, "kappa0", check_positive(self.kappa0, "kappa0"))
        if self.S0 is not None:
            S0 = check_spd_hyperparameter(self.S0, "S0", dim)
            dim = S0.shape[0]
            object.__setattr__(self, "S0", as_tuple(S0))
        if self.nu0 is not None:
            nu0 = check_positive(self.nu0, "nu0")
            if dim is not None and nu0 <= dim - 1:
                raise ValueError(f"nu0 must be > D - 1 = {dim - 1} (D = {dim}), got {nu0}")
            object.__setattr__(self, "nu0", nu0)

    def _check_observations(self, data, min_rows: int, too_few: str = "") -> GaussianData:
        """Gaussian observations as :class:`GaussianData` with N >= ``min_rows`` and D matching
        the hyperparameters; ``too_few`` is the error message when N is too small.

        Raw data are validated in full (one pass over the values); a GaussianData only has its
        shape compared, in O(1), and is returned as it is.
        """
        if not isinstance(data, GaussianData):
            data = GaussianData(data)
        n, dim = data.x.shape
        if n < min_rows:
            raise ValueError(too_few.format(n=n))
        if self.dim is not None and dim != self.dim:
            raise ValueError(f"data have D = {dim} features but the prior (m0/S0) has D = {self.dim}")
        return data

    def _resolved_m0_nu0(self, mean: np.ndarray) -> tuple[np.ndarray, float]:
        """``m0`` (the data mean ``mean`` when None) and ``nu0`` (D + 2 when None) for data of
        D = ``mean.shape[-1]`` features; a ValueError when an explicit nu0 is <= D - 1."""
        dim = mean.shape[-1]
        m0 = np.asarray(self.m0, float) if self.m0 is not None else mean
        nu0 = self.nu0 if self.nu0 is not None else dim + 2.0
        if nu0 <= dim - 1:
            raise ValueError(f"nu0 must be > D - 1 = {dim - 1} for data with D = {dim}, got {nu0}")
        return m0, nu0

    @property
    def dim(self) -> int | None:
        """D if the explicit hyperparameters fix it, else None (taken from the data)."""
        if self.m0 is not None:
            return len(self.m0)
        if self.S0 is not None:
            return len(self.S0)
        return None

    @property
    def data_driven(self) -> bool:
        """True when some hyperparameter is filled from the data (m0, nu0 or S0 is None)."""
        return self.m0 is None or self.nu0 is None or self.S0 is None
