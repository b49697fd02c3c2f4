"""EM, VB and Gibbs on chunked data (Dask): the model's data hooks as a map-reduce.

``fit(model, data, "em" | "vb" | "gibbs")`` with chunked ``data`` (a Dask array, many
sequences: :mod:`latentzoo.inference.chunked`) wraps the model in a :class:`ChunkedModel`. The
back-ends stay as they are: they call the wrapper's hooks, which run the model's own hook on
every chunk as one Dask task (on the workers of a ``distributed.Client`` when one is active,
else on Dask's default scheduler) and combine the chunks' statistics on the client with the
model's ``combine_stats``. The M-step, the VB update of q(theta) (with its KL terms, counted
once) and the conjugate draws run on the client, on statistics of size O(K D^2).

Cost per iteration: O(N K D^2 / workers) on the workers, and a reduction of O(chunks K D^2)
on the client, plus Dask's scheduling of one task per chunk (a few milliseconds each).

Gibbs: every sweep draws a seed from the chain's generator and spawns one child
(``numpy.random.SeedSequence.spawn``) per chunk, so the same seed and chunking give the same
draws (different draws from the in-memory sampler's: the chunks draw their assignments from
their own streams).
"""

from __future__ import annotations

from operator import methodcaller

import numpy as np

from ..models.core.protocols import ChunkedDataPrior, ChunkedStats, DataDrivenPrior
from .chunked import ChunkedData, read_chunked

__all__ = ["ChunkedModel", "CHUNKED_BACKENDS", "chunked_model"]

#: the back-ends whose work is a sum over chunks of the data
CHUNKED_BACKENDS = ("em", "vb", "gibbs")


def chunked_model(model, backend: str) -> "ChunkedModel":
    """``model`` wrapped for chunked data, or a clear error when it or ``backend`` cannot be."""
    if backend not in CHUNKED_BACKENDS:
        raise ValueError(
            f"backend {backend!r} does not run on chunked (Dask) data; use one of {list(CHUNKED_BACKENDS)}, "
            "or pass an in-memory array"
        )
    if not isinstance(model, ChunkedStats):
        raise TypeError(
            f"{type(model).__name__} cannot be fitted on chunked (Dask) data: it declares no combine_stats "
            "hook saying how the statistics of chunks combine"
        )
    return ChunkedModel(model)


def _hook(model, part, name: str, argument):
    """Runs on a worker: one of the model's per-data hooks (``name``, of ``ConjugateEStep``,
    ``HardAssignments`` or ``MeanField``, which the back-end's protocols guarantee) on one chunk."""
    return methodcaller(name, part, argument)(model)


def _sample_hook(model, part, params, seed):
    """Runs on a worker: the Gibbs statistics of one chunk, from its own generator."""
    return model.sample_stats(part, params, np.random.default_rng(seed))


def _prior_stats(model, part):
    return model.data_prior_stats(part)


class ChunkedModel:
    """A model whose data hooks map over chunks and reduce; every other attribute is the model's.

    Parameters
    ----------
    model : a latentzoo model with a ``combine_stats(parts)`` hook
    """

    def __init__(self, model):
        self.model = model

    def __getattr__(self, name):
        # only reached for names not defined here: the model's structure, priors, M-step, ...
        if name == "model":
            raise AttributeError(name)
        return getattr(self.model, name)

    def __repr__(self) -> str:
        return repr(self.model)

    # -- the data ------------------------------------------------------------------------
    def check_data(self, data) -> ChunkedData:
        return read_chunked(self.model, data)

    def n_observations(self, data) -> int:
        return sum(sizes[self.model.observation_dim] for sizes in self.check_data(data).dim_sizes)

    def objective_scale(self, data) -> int:
        return sum(self.check_data(data).scales)

    def objective_round_off(self, data) -> float:
        # each chunk's allowance is the model's bound for its rows; they add up
        return float(sum(self.check_data(data).round_offs))

    def with_data_prior(self, data) -> "ChunkedModel":
        if not isinstance(self.model, DataDrivenPrior):
            return self
        if not isinstance(self.model, ChunkedDataPrior):
            raise TypeError(
                f"{type(self.model).__name__}'s data-driven prior needs all the data in memory; give its "
                "hyperparameters explicitly to fit it on chunked data"
            )
        stats = self.model.combine_stats(self._map(_prior_stats, data))
        return ChunkedModel(self.model.with_data_prior_stats(stats))

    # -- the M-step needs no data: the model's own. Defined here, not left to __getattr__, because
    # isinstance(..., Protocol) looks members up statically and would not see delegated ones
    def conditional_posterior(self, stats, mle: bool = False):
        return self.model.conditional_posterior(stats, mle)

    def log_prior(self, params):
        return self.model.log_prior(params)

    # -- starting points: from the bounded in-memory subsample ---------------------------
    def initial_params(self, data, rng, *strategy):
        return self.model.initial_params(self.check_data(data).sample, rng, *strategy)

    def initial_factors(self, data, rng):
        return self.model.initial_factors(self.check_data(data).sample, rng)

    # -- the map-reduce ------------------------------------------------------------------
    def _map(self, function, data, *arguments) -> list:
        import dask

        parts = self.check_data(data).parts
        return list(dask.compute(*[dask.delayed(function)(self.model, part, *arguments) for part in parts]))

    def _stats_and_total(self, name: str, data, argument):
        results = self._map(_hook, data, name, argument)
        stats = self.model.combine_stats([stats for stats, _ in results])
        return stats, float(sum(total for _, total in results))

    def expected_stats(self, data, params):
        return self._stats_and_total("expected_stats", data, params)

    def classification_stats(self, data, params):
        return self._stats_and_total("classification_stats", data, params)

    def vb_expected_stats(self, data, factors):
        # the data term adds over chunks; vb subtracts the factors' KL once, on the client
        return self._stats_and_total("vb_expected_stats", data, factors)

    def sample_stats(self, data, params, rng):
        import dask

        parts = self.check_data(data).parts
        sweep = np.random.SeedSequence(int(rng.integers(2**63)))
        seeds = sweep.spawn(len(parts))
        tasks = [dask.delayed(_sample_hook)(self.model, part, params, seed) for part, seed in zip(parts, seeds)]
        return self.model.combine_stats(list(dask.compute(*tasks)))
