"""Parameter checks of :class:`~latentzoo.models.hmm.gaussian.GaussianHMM`: one set (``check_params``)
or arrays with common leading batch dims (posterior draws), with the fixed parameters (``covs=``,
``init_probs=``) filled in so that the algorithms always see all four.
"""

from __future__ import annotations

import numpy as np

from ..core.base import check_param_keys, check_spd, numeric_array

__all__ = ["GaussianHMMParams"]

#: rows of a probability vector must sum to one within this tolerance
STOCHASTIC_ATOL = 1e-6


class GaussianHMMParams:
    """Mixin of GaussianHMM: validation of parameter dicts (the model provides ``n_states``,
    ``n_features``, ``param_names``, ``covs`` and ``init_probs``)."""

    def _param_shapes(self) -> dict[str, tuple[int, ...]]:
        K, D = self.n_states, self.n_features
        shapes = {"init_probs": (K,), "trans_mat": (K, K), "means": (K, D), "covs": (K, D, D)}
        return {name: shapes[name] for name in self.param_names}

    def _batched(self, params, name: str) -> dict[str, np.ndarray]:
        """All four parameters as arrays of a common batch shape B, validated: probability rows
        summing to one, finite means, and (for one set) positive-definite covariances."""
        check_param_keys(params, self.param_names, name)
        arrays, batch = {}, None
        for key, shape in self._param_shapes().items():
            array = numeric_array(params[key], f"{name}[{key!r}]", f"an array of shape {shape}")
            if array.ndim < len(shape) or array.shape[array.ndim - len(shape):] != shape:
                raise ValueError(f"{name}[{key!r}] must have shape {shape} (after batch dims), got {array.shape}")
            this_batch = array.shape[: array.ndim - len(shape)]
            if batch is None:
                batch = this_batch
            elif this_batch != batch:
                raise ValueError(f"{name}: every parameter must have the same batch shape, got {batch} and {this_batch} ({key!r})")
            if not np.all(np.isfinite(array)):
                raise ValueError(f"{name}[{key!r}] must be finite")
            if key in ("init_probs", "trans_mat"):
                if np.any(array < 0):
                    raise ValueError(f"{name}[{key!r}] must hold probabilities >= 0")
                sums = array.sum(-1)
                if np.any(np.abs(sums - 1.0) > STOCHASTIC_ATOL):
                    worst = float(sums.flat[np.argmax(np.abs(sums - 1.0))])
                    raise ValueError(f"{name}[{key!r}] rows must sum to 1 (probability vectors), one sums to {worst:.6g}")
            if key == "covs" and batch == ():
                array = check_spd(array, f"{name}['covs']")
            arrays[key] = array
        return self._full(arrays, batch)

    def _full(self, params: dict, batch: tuple = ()) -> dict[str, np.ndarray]:
        """``params`` with the fixed ``init_probs`` and ``covs`` added (broadcast to the batch)."""
        K, D = self.n_states, self.n_features
        full = dict(params)
        if self.init_probs is not None:
            full["init_probs"] = np.broadcast_to(np.asarray(self.init_probs, float), batch + (K,))
        if self.covs is not None:
            full["covs"] = np.broadcast_to(np.asarray(self.covs, float), batch + (K, D, D))
        return full

    def check_params(self, params, name: str = "params") -> dict[str, np.ndarray]:
        """Validate one set of parameters (no batch dims): ``init_probs`` (K,) and each row of
        ``trans_mat`` (K, K) probability vectors, ``means`` (K, D) finite, ``covs`` (K, D, D)
        symmetric positive definite; the fixed ones are left out. ``name`` is used in errors."""
        full = self._batched(params, name)
        if full["trans_mat"].ndim != 2:
            raise ValueError(f"{name} must be one set of parameters, got batch shape {full['trans_mat'].shape[:-2]}")
        return {key: full[key] for key in self.param_names}
