"""The Categorical component family with Dirichlet priors: symbols 0..M-1, one probability row
per component, an optional mask of the symbols each component can emit (a
:class:`~latentzoo.models.core.conjugate.MaskedDirichlet` on the allowed ones).

Besides the :class:`~latentzoo.models.core.protocols.ComponentFamily` methods, the family is a
*table* family (:class:`~latentzoo.models.core.protocols.TableEmissions`): the hidden Markov
model's compiled kernels read ``emission_probs[k, x_t]`` from the (K, M) table and count
symbols in the loop, so no (T, K) matrix is ever formed. A missing step (coded M) reads an
extra column of ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from ..core.base import inside_simplex
from ..core.conjugate import Dirichlet, MaskedDirichlet
from ..core.stats_combine import sum_stats
from ..core.sequences import Alphabet, Sequences, read_sequences
from .checks import concentration_array, log_multivariate_beta, log_multivariate_beta_of_counts, probability_array

__all__ = ["CategoricalFamily"]


@dataclass(frozen=True)
class CategoricalFamily:
    """Categorical components ``x | k ~ Categorical(emission_probs[k])`` with Dirichlet priors.

    Parameters
    ----------
    n_symbols : int
        M; symbols are coded 0..M-1 and written ``first_label``..``first_label + M - 1``.
    concentration : float or nested tuple broadcasting to (K, M)
        Dirichlet concentration of each row (only allowed entries matter).
    mask : nested tuple of bool of shape (K, M), optional
        Which symbols each component can emit.
    first_label : int
        How symbol 0 is written (1 for dice faces).
    observed_name : str
        Name of the observations in results.
    description : str
        How the symbols are described in data errors.
    component_labels : tuple, optional
        Names of the components in errors (dice names).
    owner : str
        The model's name, in data errors.
    prior_name : str
        The argument that set ``concentration``, in errors.
    """

    n_symbols: int
    concentration: object = 1.0
    mask: tuple | None = None
    first_label: int = 0
    observed_name: str = "symbols"
    description: str = ""
    component_labels: tuple | None = None
    owner: str = "Categorical"
    prior_name: str = "emission_prior"

    param_dims = {"emission_probs": ("symbol",)}
    event_dims = ()
    prior_key = "emission_probs"
    allows_missing = True
    start_strategies = ("random",)

    # -- structure ----------------------------------------------------------------------
    @cached_property
    def mask_array(self) -> np.ndarray | None:
        return None if self.mask is None else np.array(self.mask, dtype=bool)

    def param_shapes(self, n_components: int) -> dict[str, tuple[int, ...]]:
        return {"emission_probs": (n_components, self.n_symbols)}

    @lru_cache(maxsize=8)  # noqa: B019 (a frozen, hashable family; EM asks at every iteration)
    def concentration_array(self, n_components: int) -> np.ndarray:
        return concentration_array(self.concentration, self.prior_name, (n_components, self.n_symbols), self.mask_array)

    # -- data ---------------------------------------------------------------------------
    @cached_property
    def _alphabet(self) -> Alphabet:
        mask = self.mask_array
        return Alphabet(
            n_symbols=self.n_symbols, first_label=self.first_label,
            description=self.description or f"integers 0..{self.n_symbols - 1}",
            emittable=None if mask is None else mask.any(axis=0), model_name=self.owner,
        )

    def check_sequences(self, data) -> Sequences:
        """Sequences of symbols (see :func:`latentzoo.models.core.sequences.read_sequences`)."""
        return read_sequences(data, self._alphabet)

    def rows(self, data: Sequences) -> np.ndarray:
        """The observed symbols (n_observed,), coded 0..M-1."""
        return data.x_observed

    def filled_rows(self, data: Sequences) -> np.ndarray:
        return self.codes(data)

    def check_observations(self, data) -> np.ndarray:
        """The coded symbols (N,) of one sequence of observations (missing: M)."""
        return self.codes(self.check_sequences(data))

    def codes(self, data: Sequences) -> np.ndarray:
        """Coded symbols (T,), missing steps coded M (the table's column of ones)."""
        return data.coded(self.n_symbols)

    def support(self, data: Sequences, n_components: int) -> np.ndarray:
        """(T, K) bool: the components that can emit each step (all for a missing one)."""
        mask = self.mask_array if self.mask is not None else np.ones((n_components, self.n_symbols), bool)
        return np.concatenate([mask, np.ones((n_components, 1), bool)], axis=1)[:, self.codes(data)].T

    def round_off(self, rows) -> float:
        return 0.0

    def observed_data(self, data: Sequences) -> dict:
        return {self.observed_name: (data.labels, ("time",))}

    def coords(self, observations) -> dict[str, list]:
        return {"symbol": list(range(self.first_label, self.first_label + self.n_symbols))}

    # -- parameters and priors ----------------------------------------------------------
    def check_params(self, params: dict, n_components: int, name: str = "params") -> dict:
        """``emission_probs`` of shape ``batch + (K, M)``: probability rows, zero where masked."""
        emission = probability_array(params["emission_probs"], f"{name}['emission_probs']", (n_components, self.n_symbols))
        mask = self.mask_array
        if mask is not None:
            leaked = np.where(mask, 0.0, emission)
            if np.any(leaked > 0):
                component, symbol = np.argwhere(leaked.reshape(-1, *mask.shape).max(axis=0) > 0)[0]
                label = component if self.component_labels is None else self.component_labels[component]
                raise ValueError(
                    f"{name}['emission_probs'][{component}, {symbol}] must be 0: state {label} "
                    f"cannot emit symbol {symbol + self.first_label} (emission_mask)"
                )
        return {"emission_probs": emission}

    def full(self, params: dict) -> dict:
        return params

    def n_parameters(self, observations, n_components: int) -> int:
        """Free parameters: each row's allowed symbols less one (a row sums to one)."""
        if self.mask_array is None:
            return n_components * (self.n_symbols - 1)
        return int(self.mask_array.sum() - self.mask_array.shape[0])

    def _dirichlet(self, concentration: np.ndarray):
        return Dirichlet(concentration) if self.mask is None else MaskedDirichlet(concentration, self.mask_array)

    @lru_cache(maxsize=8)  # noqa: B019
    def prior(self, n_components: int) -> dict:
        """``{"emission_probs": Dirichlet}`` batched over the K rows (masked with a mask)."""
        return {"emission_probs": self._dirichlet(self.concentration_array(n_components))}

    @lru_cache(maxsize=8)  # noqa: B019
    def flat_prior(self, n_components: int) -> dict:
        # Dirichlet(1): the mode given counts is the maximum-likelihood estimate
        return {"emission_probs": self._dirichlet(np.ones((n_components, self.n_symbols)))}

    def log_prior(self, params: dict, n_components: int) -> np.ndarray:
        return self.prior(n_components)["emission_probs"].log_pdf(params["emission_probs"]).sum(-1)

    def posterior(self, stats: dict, n_components: int, mle: bool = False) -> dict:
        prior = self.flat_prior(n_components) if mle else self.prior(n_components)
        return {"emission_probs": prior["emission_probs"].update(stats["emission_counts"])}

    def log_marginal(self, stats: dict, n_components: int) -> np.ndarray:
        """``log p(x assigned to k)`` with the rows integrated out, ``log B(alpha_k + counts_k) -
        log B(alpha_k)``, shape ``(*batch, K)``."""
        alpha, mask = self.concentration_array(n_components), self.mask_array
        return (log_multivariate_beta_of_counts(alpha, stats["emission_counts"], mask)
                - log_multivariate_beta(alpha, mask))

    # -- densities and statistics -------------------------------------------------------
    def emission_table(self, params: dict) -> np.ndarray:
        """The (K, M) table the kernels read as ``table[k, x_t]``."""
        return params["emission_probs"]

    def expected_table(self, factors: dict) -> np.ndarray:
        """``exp(E_q[log emission_probs])`` (K, M): VB's sub-normalised table."""
        return np.exp(factors["emission_probs"].expected_log())

    def table_stats(self, counts: np.ndarray) -> dict:
        """Statistics from symbol counts (K, M) (a padding column beyond M is dropped)."""
        return {"emission_counts": np.ascontiguousarray(counts[:, : self.n_symbols])}

    def log_density(self, observations, params: dict) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(np.asarray(params["emission_probs"]))[..., observations].swapaxes(-1, -2)

    def expected_log_density(self, observations, factors: dict) -> np.ndarray:
        return factors["emission_probs"].expected_log()[:, observations].T

    def stats(self, observations, weights: np.ndarray) -> dict:
        one_hot = np.zeros((observations.size, self.n_symbols))
        one_hot[np.arange(observations.size), observations] = 1.0
        return {"emission_counts": weights.T @ one_hot}

    def label_stats(self, observations, labels, n_components: int) -> dict:
        counts = np.zeros((n_components, self.n_symbols))
        np.add.at(counts, (labels, observations), 1.0)
        return {"emission_counts": counts}

    def combine_stats(self, parts: list) -> dict:
        return sum_stats(parts)

    def simulate(self, params: dict, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Symbols as written (``first_label``..) for each label, int64 of shape (N,)."""
        emission = params["emission_probs"]
        cumulative = np.cumsum(emission, axis=1)[labels]
        uniforms = rng.random(labels.size)[:, None] * cumulative[:, -1:]
        symbols = np.minimum((uniforms >= cumulative).sum(axis=1), self.n_symbols - 1)
        # a round-off guard: never return a masked symbol
        symbols = np.where(emission[labels, symbols] > 0, symbols, np.argmax(emission[labels], axis=1))
        return symbols + self.first_label

    def initial_params(self, observations, n_components: int, rng, strategy: str = "random"):
        """Rows from the flat Dirichlet (``"random"``) or the prior (``"prior"``), kept off the
        simplex's boundary; returns ``(params, None)`` (no hard assignment)."""
        source = self.prior(n_components) if strategy == "prior" else self.flat_prior(n_components)
        # a small concentration can round entries to exactly 0, which may make the data impossible
        value = np.maximum(source["emission_probs"].sample(rng), 1e-6)
        if self.mask is not None:
            value = np.where(self.mask_array, value, 0.0)
        return {"emission_probs": value / value.sum(axis=-1, keepdims=True)}, None

    # -- PyMC ---------------------------------------------------------------------------
    def _row_names(self) -> list[str]:
        labels = self.component_labels or range(len(self.mask))
        return [f"emission_probs_{label}".replace("#", "_") for label in labels]

    def pymc_initial_point(self, params: dict) -> dict:
        # off the boundary: an EM mode gives a symbol never emitted the probability 0
        emission = np.asarray(params["emission_probs"], float)
        if self.mask is None:
            return {"emission_probs": inside_simplex(emission)}
        mask = self.mask_array
        return {name: inside_simplex(emission[row, mask[row]]) for row, name in enumerate(self._row_names())}

    def pymc_priors(self, n_components: int, label_dim: str, observations=None) -> dict:
        """``emission_probs`` a batched Dirichlet, or with a mask one Dirichlet per component over
        its allowed symbols (``emission_probs_<label>``) placed into a Deterministic."""
        import pymc as pm
        import pytensor.tensor as pt

        from ..ops.pymc_data import hyperparameter

        alpha = self.concentration_array(n_components)
        if self.mask is None:
            emission = pm.Dirichlet("emission_probs", a=hyperparameter("emission_probs_prior", alpha), dims=(label_dim, "symbol"))
            return {"emission_probs": emission, "n_components": n_components}
        rows = []
        for row, name in enumerate(self._row_names()):
            allowed = np.flatnonzero(self.mask_array[row])
            row_probs = pm.Dirichlet(name, a=hyperparameter(f"{name}_prior", alpha[row, allowed]))
            # scatter into the full row by a 0/1 matrix product: exact zeros elsewhere, and
            # compiled BLAS ops (set_subtensor with index arrays runs in Python)
            placement = np.zeros((allowed.size, self.n_symbols))
            placement[np.arange(allowed.size), allowed] = 1.0
            rows.append(pt.dot(row_probs, placement))
        emission = pm.Deterministic("emission_probs", pt.stack(rows), dims=(label_dim, "symbol"))
        return {"emission_probs": emission, "n_components": n_components}

    def pymc_start_log_density(self, observations, params: dict) -> np.ndarray:
        """Where explicit states start: log densities (N, K) under the prior mean."""
        mean = self.prior(params["n_components"])
        return np.log(np.maximum(mean["emission_probs"].mean(), 1e-300))[:, observations].T

    def pymc_table(self, params: dict):
        return params["emission_probs"]

    def pymc_log_density(self, observations, params: dict):
        import pytensor.tensor as pt

        return pt.log(params["emission_probs"]).T[observations]

    def pymc_observe(self, rows: np.ndarray, params: dict, labels) -> None:
        """The observed ``rows`` (N,) given their components ``labels`` (a tensor)."""
        import pymc as pm

        pm.Categorical(self.observed_name, p=params["emission_probs"][labels], observed=rows)
