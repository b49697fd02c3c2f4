"""One hidden Markov model: initial and transition Dirichlets plus an emission component family.

Generative model (one sequence; many sequences share the parameters)::

    init_probs ~ Dirichlet(init_prior)                    (state,)
    trans_mat[i] ~ Dirichlet(trans_prior[i])              (state, state_next)
    theta_k ~ the family's conjugate prior                (state, ...)
    z_1 ~ Categorical(init_probs),  z_t | z_t-1 ~ Categorical(trans_mat[z_t-1])
    x_t | z_t ~ the family's density at theta_{z_t}

:class:`HiddenMarkovModel` owns everything given the states' chain: validation of sizes,
parameters and sequences (the family reads the per-step rows), forward-backward, filtering,
Viterbi, FFBS, simulation, the latent posterior, the hooks of the back-ends and the PyMC
declaration. The emission family (:mod:`latentzoo.models.families`) supplies its conjugate
prior, statistics and densities. The compiled kernels read the emission likelihoods as
``emission[k, rows[t]]`` (:meth:`HiddenMarkovModel._emission`), which every family fills:

* a *table* family (:class:`~latentzoo.models.core.protocols.TableEmissions`, the categorical
  one) hands over its (K, M) table and the coded symbols as the rows, and the kernels count the
  symbols in the loop: no (T, K) matrix is formed;
* a *scaled* family (:class:`~latentzoo.models.core.protocols.ScaledEmissions`, the Gaussian
  one) gives its likelihoods divided by a factor per step as a (K, T) table (rows 0..T-1), the
  factors' logs added back; used where parameters are given (EM, smoothing, the
  log-likelihood, FFBS), not for VB;
* any other family gives the (T, K) matrix of log densities, shifted by each row's maximum so
  that nothing underflows, read through its transpose.

Missing steps drop their emission factor (a column of ones in the table, a log density of 0),
so the chain still moves through them. Back-ends: ``em`` (Baum-Welch; the M-step is the mode of
the conjugate posteriors), ``gibbs`` (FFBS, then the conjugate draws), ``vb`` (forward-backward
with ``exp(E_q[log theta])``; Beal 2003, ch. 3), ``exact`` (enumeration of the state paths,
:mod:`latentzoo.models.hmm.exact`), and the PyMC back-ends through the forward-backward Op.
"""

from __future__ import annotations

import numbers
from dataclasses import replace
from functools import cached_property

import numpy as np

from ..core.base import LatentModel, check_param_keys, check_rng, inside_simplex
from ..core.conjugate import Dirichlet
from ..core.protocols import ScaledEmissions, TableEmissions
from ..core.sizes import check_count, check_parameter_size
from ..families.checks import concentration_array, probability_array
from . import kernels

__all__ = ["HiddenMarkovModel", "LATENT_MAX_ENTRIES", "count", "split"]

#: ``latent_posterior`` returns the per-draw state probabilities only up to this many entries
#: (draws x time steps x states; 5e6 float64 is 40 MB)
LATENT_MAX_ENTRIES = 5_000_000


def count(value, name: str, minimum: int) -> int:
    """:func:`check_count`, accepting a 0-d integer array where an int is documented."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    return check_count(value, name, minimum)


def split(array: np.ndarray, offsets: np.ndarray, single: bool):
    """An array over concatenated time steps as one array (``single``) or a list per sequence."""
    if single:
        return array
    return [array[start:stop] for start, stop in zip(offsets[:-1], offsets[1:])]


def _lengths(size) -> tuple[list[int], bool]:
    if isinstance(size, np.ndarray) and size.ndim == 0:
        size = size[()]
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        lengths, single = [int(size)], True
    else:
        try:
            lengths, single = [int(n) for n in size], False
        except TypeError:
            raise TypeError(f"size must be an int or a sequence of ints, got {size!r}") from None
        if any(not isinstance(n, numbers.Integral) or isinstance(n, bool) for n in size):
            raise TypeError(f"size must hold ints, got {size!r}")
    if not lengths or min(lengths) < 1:
        raise ValueError(f"size must be a positive length or a non-empty list of them, got {size!r}")
    return lengths, single


def _shifted(log_emission: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    shift = log_emission.max(axis=1)
    return np.exp(log_emission - shift[:, None]), shift


class HiddenMarkovModel(LatentModel):
    """The shared implementation; a model sets ``n_states``, ``init_prior``, ``trans_prior`` and
    ``family`` (an emission component family), and may fix ``fixed_init_probs``.

    Parameters (variables) are ``init_probs`` (state), ``trans_mat`` (state, state_next) and the
    family's, each with ``state`` in front of the family's dims.
    """

    observation_dim = "sequence"
    #: ``state_next`` indexes the same states a second time (rows and columns of trans_mat)
    paired_label_dims = {"state_next": "state"}

    # -- structure ----------------------------------------------------------------------
    @property
    def fixed_init_probs(self) -> np.ndarray | None:
        """A known initial distribution (K,), or None when ``init_probs`` is estimated."""
        return None

    @property
    def state_labels(self) -> list:
        return list(range(self.n_states))

    @property
    def table(self) -> bool:
        """True for a family whose kernels read a (K, M) table (no (T, K) matrix)."""
        return isinstance(self.family, TableEmissions)

    @property
    def scaled(self) -> bool:
        """True for a family that gives (K, T) likelihoods up to a factor per step."""
        return isinstance(self.family, ScaledEmissions)

    def _check_sizes(self, **sizes) -> None:
        """Validated sizes set on the dataclass (ints >= their minimum; 0-d integer arrays
        accepted); parameters too large to allocate refused before any array is made."""
        for name, (value, minimum) in sizes.items():
            object.__setattr__(self, name, count(value, name, minimum))

    def _check_chain_size(self) -> None:
        K = self.n_states
        check_parameter_size({"n_states": K, "n_states (next)": K}, "trans_mat")

    def param_dims(self) -> dict[str, tuple[str, ...]]:
        dims = {"init_probs": ("state",), "trans_mat": ("state", "state_next")}
        if self.fixed_init_probs is not None:
            del dims["init_probs"]
        return {**dims, **{name: ("state", *rest) for name, rest in self.family.param_dims.items()}}

    def latent_dims(self) -> dict[str, tuple[str, ...]]:
        return {"state_probs": ("time", "state")}

    # -- data ---------------------------------------------------------------------------
    def check_data(self, data):
        """Validate one sequence or a list of sequences (the family reads the rows; see its
        ``check_sequences``). A validated container is returned as it is after a cheap check."""
        return self.family.check_sequences(data)

    def n_observations(self, data) -> int:
        return self.check_data(data).n_sequences

    def objective_scale(self, data) -> int:
        # EM/VB tolerances are per observed time step: one sequence of 1e6 steps is not one
        # observation, and a missing step adds nothing to the log-likelihood
        data = self.check_data(data)
        return data.n_steps - data.n_missing

    def objective_round_off(self, data) -> float:
        return self.family.round_off(self.family.rows(self.check_data(data)))

    def coords(self, data) -> dict[str, list]:
        data = self.check_data(data)
        states = self.state_labels
        return {
            "state": states, "state_next": states, **self.family.coords(data),
            # arrays, not lists: a list of 1e6 Python ints took a tenth of a second to build and convert
            "sequence": np.arange(data.n_sequences), "time": np.arange(data.n_steps),
        }

    def observed_data(self, data) -> dict[str, tuple[np.ndarray, tuple[str, ...]]]:
        """The observations of all sequences concatenated over ``time`` (missing steps as the
        family marks them) and each sequence's length; the first names the log-likelihood."""
        data = self.check_data(data)
        return {**self.family.observed_data(data), "sequence_length": (data.lengths, ("sequence",))}

    # -- priors -------------------------------------------------------------------------
    def _chain_arrays(self) -> dict[str, np.ndarray]:
        K = self.n_states
        return {"init_prior": concentration_array(self.init_prior, "init_prior", (K,)),
                "trans_prior": concentration_array(self.trans_prior, "trans_prior", (K, K))}

    @cached_property
    def _chain_priors(self) -> dict:
        arrays = self._chain_arrays()
        priors = {"init_probs": Dirichlet(arrays["init_prior"]), "trans_mat": Dirichlet(arrays["trans_prior"])}
        if self.fixed_init_probs is not None:
            del priors["init_probs"]
        return priors

    @cached_property
    def _flat_chain_priors(self) -> dict:
        # Dirichlet(1): the mode given counts is the maximum-likelihood estimate
        return {name: Dirichlet(np.ones(prior.concentrations.shape)) for name, prior in self._chain_priors.items()}

    def prior(self) -> dict:
        """Dirichlet priors of ``init_probs`` (unless fixed) and every row of ``trans_mat`` (batch
        K), and the family's conjugate prior batched over the states."""
        return {**self._chain_priors, **self.family.prior(self.n_states)}

    def log_prior(self, params) -> np.ndarray:
        """Sum of the Dirichlet and emission prior log-densities, shape B (the params' batch)."""
        full = self._batched(params, "params")
        chain = self._chain_priors
        total = chain["trans_mat"].log_pdf(full["trans_mat"]).sum(-1)
        if "init_probs" in chain:
            total = chain["init_probs"].log_pdf(full["init_probs"]) + total
        return total + self.family.log_prior(full, self.n_states)

    # -- parameters ---------------------------------------------------------------------
    def _batched(self, params, name: str) -> dict[str, np.ndarray]:
        """Every parameter (the fixed ones filled in) as arrays of a common batch shape B."""
        names = self.param_names
        check_param_keys(params, names, name)
        K = self.n_states
        arrays = {key: probability_array(params[key], f"{name}[{key!r}]", shape)
                  for key, shape in (("init_probs", (K,)), ("trans_mat", (K, K))) if key in names}
        arrays.update(self.family.check_params(params, K, name))
        batch = None
        param_dims = self.param_dims()
        for key, array in arrays.items():
            ndim = len(param_dims[key])
            this_batch = array.shape[: array.ndim - ndim]
            if batch is None:
                batch = this_batch
            elif this_batch != batch:
                raise ValueError(f"{name}: every parameter must have the same batch shape, got {batch} and {this_batch} ({key!r})")
        return self._full(arrays, batch)

    def _full(self, params: dict, batch: tuple | None = None) -> dict[str, np.ndarray]:
        """``params`` as float arrays with a fixed ``init_probs`` and the family's fixed parts added."""
        full = {name: np.asarray(value, float) for name, value in params.items()}
        if batch is None:
            batch = full["trans_mat"].shape[:-2]
        if self.fixed_init_probs is not None:
            full["init_probs"] = np.broadcast_to(np.asarray(self.fixed_init_probs, float), batch + (self.n_states,))
        return self.family.full(full)

    def check_params(self, params, name: str = "params") -> dict[str, np.ndarray]:
        """Validate one set of parameters (no batch dims): probability rows for ``init_probs`` and
        ``trans_mat``, the family's checks for its own. ``name`` is used in errors."""
        full = self._batched(params, name)
        if full["trans_mat"].ndim != 2:
            raise ValueError(f"{name} must be one set of parameters, got batch shape {full['trans_mat'].shape[:-2]}")
        return {key: full[key] for key in self.param_names}

    # -- the emissions, as the kernels read them ------------------------------------------
    def _table(self, data, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The kernels' ``(table, codes)``: the (..., K, M) table with one more column of ones when
        steps are missing (they read it through the codes), and the coded symbols."""
        if data.n_missing:
            table = np.concatenate([table, np.ones(table.shape[:-1] + (1,))], axis=-1)
        return np.ascontiguousarray(table, dtype=np.float64), self.family.codes(data)

    @staticmethod
    def _place(data, observed_rows: np.ndarray) -> np.ndarray:
        """(T, K) C-contiguous log densities from the (n_observed, K) rows; 0 on missing steps."""
        if data.all_observed:
            return np.ascontiguousarray(observed_rows)
        out = np.zeros((data.n_steps, observed_rows.shape[1]))
        out[data.observed] = observed_rows
        return out

    def _log_emission(self, data, params) -> np.ndarray:
        return self._place(data, self.family.log_density(self.family.rows(data), params))

    def _emission(self, data, params, expected_log: bool = False) -> tuple[np.ndarray, np.ndarray, object]:
        """The kernels' ``(emission, rows)``, read as ``emission[k, rows[t]]`` (1 on a missing
        step), and the logs of the factors the likelihoods were divided by ((T,), or 0.0 for a
        table): a table family's (K, M) table and codes, a scaled family's (K, T) likelihoods, or
        any other family's shifted (T, K) densities, transposed. ``params`` are the family's
        parameters, or with ``expected_log`` its VB factors (giving ``exp(E_q[log p(x | theta)])``)."""
        family = self.family
        if self.table:
            table = family.expected_table(params) if expected_log else family.emission_table(params)
            return *self._table(data, table), 0.0
        steps = np.arange(data.n_steps)
        if self.scaled and not expected_log:
            lik, log_scale = family.scaled_likelihood(family.rows(data), params, False)
            if data.all_observed:
                return lik, steps, log_scale
            full = np.ones((lik.shape[0], data.n_steps))
            full[:, data.observed] = lik
            return full, steps, self._place(data, log_scale[:, None])[:, 0]
        rows = family.rows(data)
        log_density = family.expected_log_density(rows, params) if expected_log else family.log_density(rows, params)
        lik, shift = _shifted(self._place(data, log_density))
        return lik.T, steps, shift

    def _smooth(self, data, params) -> tuple[np.ndarray, int]:
        """Smoothed state probabilities (T, K) and the kernels' ``bad`` step."""
        emission, rows, _ = self._emission(data, params)
        gamma, _, bad = kernels.smooth(params["init_probs"], params["trans_mat"], emission, data.offsets, rows)
        return gamma, bad

    # -- inference given parameters -----------------------------------------------------
    def log_likelihood(self, data, params) -> np.ndarray:
        """Per-sequence log-likelihood with the states summed out (scaled forward algorithm).

        Parameters
        ----------
        data : sequences (see :meth:`check_data`)
        params : dict of arrays of a common batch shape B (e.g. (chain, draw))

        Returns
        -------
        ndarray of shape B + (n_sequences,)
            ``-inf`` where a sequence is impossible under the parameters.
        """
        data = self.check_data(data)
        full = self._batched(params, "params")
        batch = full["trans_mat"].shape[:-2]
        flat = {name: value.reshape((-1,) + value.shape[len(batch):]) for name, value in full.items()}
        init, trans = np.ascontiguousarray(flat["init_probs"]), np.ascontiguousarray(flat["trans_mat"])
        if self.table:
            out = kernels.log_likelihood_batch(init, trans, *self._table(data, self.family.emission_table(flat)), data.offsets)
            return out.reshape(batch + (data.n_sequences,))
        out = np.empty((trans.shape[0], data.n_sequences))
        starts = data.offsets[:-1]
        for index in range(out.shape[0]):
            emission, rows, shift = self._emission(data, {name: value[index] for name, value in flat.items()})
            _, _, log_lik, bad = kernels.forward(init[index], trans[index], emission, data.offsets, rows)
            out[index] = log_lik + np.add.reduceat(shift, starts) if bad < 0 else -np.inf
        return out.reshape(batch + (data.n_sequences,))

    def filter(self, data, params):
        """Filtered state probabilities ``p(z_t | x_1..t)``: (T, n_states) for one sequence, or a list.

        Raises
        ------
        ValueError
            If an observation has probability zero under every reachable state.
        """
        data = self.check_data(data)
        full = self._full(self.check_params(params))
        emission, rows, _ = self._emission(data, full)
        alpha, _, _, bad = kernels.forward(full["init_probs"], full["trans_mat"], emission, data.offsets, rows)
        kernels.raise_if_impossible(bad, data.offsets)
        return data.split(alpha)

    def posterior_states(self, data, params):
        """Smoothed state probabilities ``p(z_t | x_1..T)`` (forward-backward): (T, n_states) for
        one sequence, or a list."""
        data = self.check_data(data)
        gamma, bad = self._smooth(data, self._full(self.check_params(params)))
        kernels.raise_if_impossible(bad, data.offsets)
        return data.split(gamma)

    def viterbi(self, data, params):
        """Most probable state path and its log joint probability ``log p(x, z*)``.

        Returns
        -------
        path : int ndarray of shape (T,) of state indices, or a list of them
        log_prob : float, or ndarray of shape (n_sequences,)

        Raises
        ------
        ValueError
            If a sequence is impossible under the parameters (every path has probability 0).
        """
        data = self.check_data(data)
        full = self._full(self.check_params(params))
        with np.errstate(divide="ignore"):
            log_init, log_trans = np.log(full["init_probs"]), np.log(full["trans_mat"])
            if self.table:
                table, codes = self._table(data, self.family.emission_table(full))
                path, log_prob = kernels.viterbi(log_init, log_trans, np.log(table), data.offsets, codes)
            else:
                path, log_prob = kernels.viterbi(log_init, log_trans, self._log_emission(data, full), data.offsets)
        if not np.all(np.isfinite(log_prob)):
            sequence = int(np.argmax(~np.isfinite(log_prob)))
            raise ValueError(f"sequence {sequence} has probability zero under the parameters; no path can emit it")
        if data.single:
            return path, float(log_prob[0])
        return data.split(path), log_prob

    def simulate(self, params, size, rng=None):
        """Simulate sequences.

        Parameters
        ----------
        params : dict of one set of parameters
        size : int or sequence of int
            An int (or 0-d integer array) gives one sequence of that length; a sequence of ints
            gives a list.
        rng : numpy.random.Generator or int seed

        Returns
        -------
        data : ndarray with T rows (the family's observations, as written), or a list of them
            Complete: no step is missing.
        states : int ndarray of shape (T,) of state indices, or a list
        """
        rng = check_rng(rng, "rng")
        full = self._full(self.check_params(params))
        lengths, single = _lengths(size)
        offsets = kernels.as_offsets(lengths)
        states = kernels.sample_chain(full["init_probs"], full["trans_mat"], offsets, rng.random(offsets[-1]))
        x = self.family.simulate(full, states, rng)
        return split(x, offsets, single), split(states, offsets, single)

    def latent_posterior(self, data, params) -> dict[str, np.ndarray]:
        """Smoothed state probabilities ``p(z_t = k | x, theta)`` for every set of parameters.

        Returns
        -------
        dict with ``state_probs`` of shape B + (T, n_states) (sequences concatenated over
        ``time``; NaN for a set under which the data are impossible); empty when that array would
        exceed ``LATENT_MAX_ENTRIES`` entries, so that storing posteriors never exhausts memory.
        """
        data = self.check_data(data)
        full = self._batched(params, "params")
        batch = full["trans_mat"].shape[:-2]
        K = self.n_states
        n_sets = int(np.prod(batch, dtype=np.int64))
        if n_sets * data.n_steps * K > LATENT_MAX_ENTRIES:
            return {}
        flat = {name: value.reshape((-1,) + value.shape[len(batch):]) for name, value in full.items()}
        sets = []
        for index in range(n_sets):
            gamma, bad = self._smooth(data, {name: value[index] for name, value in flat.items()})
            if bad >= 0:  # a draw under which the data are impossible has no posterior over states
                gamma[:] = np.nan
            sets.append(gamma)
        # one set (EM, MAP) is returned without a copy: at T = 1e6 the copy cost a fifth of the pass
        out = sets[0][None] if n_sets == 1 else np.stack(sets)
        return {"state_probs": out.reshape(batch + (data.n_steps, K))}

    # -- hooks: EM ----------------------------------------------------------------------
    def initial_params(self, data, rng, strategy: str | None = None) -> dict[str, np.ndarray]:
        """Starting point for EM, Gibbs and VB.

        ``"random"``: ``init_probs`` and every row of ``trans_mat`` uniformly from the simplex,
        the family's random start (categorical rows from the simplex; Gaussian means at distinct
        random rows); ``"prior"``: a draw from the prior; a family's data strategy
        (``"kmeans++"``): its start and hard assignment, the transition matrix half uniform and
        half the assignment's transition frequencies (plus one), a uniform ``init_probs``.
        Probabilities are kept at least 1e-6 (a draw can round entries to 0). The default is
        the family's first strategy.
        """
        family = self.family
        strategies = (*family.start_strategies, "prior")
        strategy = family.start_strategies[0] if strategy is None else strategy
        if strategy not in strategies:
            names = ", ".join(repr(s) for s in strategies)
            raise ValueError(f"init strategy must be {names} or a dict of params, got {strategy!r}")
        K = self.n_states
        if strategy in ("random", "prior"):
            # a start that needs no data (the categorical rows) may be asked for without any
            rows = None if data is None else family.rows(self.check_data(data))
            source = self._chain_priors if strategy == "prior" else self._flat_chain_priors
            if strategy == "prior":
                self.prior()  # a data-driven prior cannot be drawn from
            params = {}
            for name, dist in source.items():
                value = np.maximum(dist.sample(rng), 1e-6)
                params[name] = value / value.sum(axis=-1, keepdims=True)
            emission, _ = family.initial_params(rows, K, rng, strategy)
            return {**params, **emission}
        data = self.check_data(data)
        emission, labels = family.initial_params(family.rows(data), K, rng, strategy)
        path = np.full(data.n_steps, -1)
        path[data.observed] = labels
        following = np.ones((K, K))
        consecutive = (path[:-1] >= 0) & (path[1:] >= 0)
        consecutive[data.offsets[1:-1] - 1] = False  # no transition across sequences
        np.add.at(following, (path[:-1][consecutive], path[1:][consecutive]), 1.0)
        uniform = np.full((K, K), 1.0 / K)
        params = {"init_probs": np.full(K, 1.0 / K), "trans_mat": 0.5 * uniform + 0.5 * following / following.sum(1, keepdims=True)}
        params.update(emission)
        return {name: params[name] for name in self.param_names}

    def _pass(self, data, init, trans, emission, expected_log: bool = False):
        """Forward-backward statistics: (stats, log-likelihood (log Z for VB) summed over sequences).

        ``emission`` is the family's parameters, or with ``expected_log`` its VB factors."""
        # contiguous, as the kernels are compiled for (a fixed init_probs is a broadcast view)
        init = np.ascontiguousarray(init, dtype=np.float64)
        trans = np.ascontiguousarray(trans, dtype=np.float64)
        family = self.family
        lik, rows, log_scale = self._emission(data, emission, expected_log)
        if self.table:
            log_lik, init_c, trans_c, emission_c, bad = kernels.expected_counts(
                init, trans, lik, rows, data.offsets, lik.shape[1], rows)
            kernels.raise_if_impossible(bad, data.offsets)
            # the padding column counts the missing steps' states, which emitted nothing we saw
            emission_stats = family.table_stats(emission_c)
        else:
            log_lik, init_c, trans_c, gamma, bad = kernels.smooth_counts(init, trans, lik, rows, data.offsets)
            kernels.raise_if_impossible(bad, data.offsets)
            emission_stats = family.stats(family.rows(data), gamma if data.all_observed else gamma[data.observed])
        return {"init_counts": init_c, "trans_counts": trans_c, **emission_stats}, float(log_lik.sum() + np.sum(log_scale))

    def expected_stats(self, data, params):
        """Baum-Welch E-step: forward-backward expected statistics and the log-likelihood.

        Returns
        -------
        stats : dict with ``init_counts`` (K,), ``trans_counts`` (K, K) and the family's
            statistics (categorical ``emission_counts`` (K, M); Gaussian ``counts``, ``means``,
            ``scatters``)
        log_lik : float
            ``log p(x | params)`` summed over sequences.
        """
        data = self.check_data(data)
        full = self._full(params)
        return self._pass(data, full["init_probs"], full["trans_mat"], full)

    def combine_stats(self, parts) -> dict:
        """Statistics of partitions of the sequences combined (counts add; the family combines its own)."""
        return self.family.combine_stats(parts)

    def conditional_posterior(self, stats, mle: bool = False) -> dict:
        """Conjugate posteriors given (expected or complete) statistics: Dirichlet rows of the
        chain, the family's posterior. ``mle=True``: flat priors (Dirichlet(1), the family's flat
        limit), whose modes are the maximum-likelihood estimates."""
        chain = self._flat_chain_priors if mle else self._chain_priors
        posterior = {name: prior.update(stats["init_counts" if name == "init_probs" else "trans_counts"])
                     for name, prior in chain.items()}
        return {**posterior, **self.family.posterior(stats, self.n_states, mle)}

    # -- hooks: Gibbs -------------------------------------------------------------------
    def sample_stats(self, data, params, rng):
        """Gibbs step for the states: one FFBS draw of every path; complete-data statistics."""
        data = self.check_data(data)
        full = self._full(params)
        emission, rows, _ = self._emission(data, full)
        path, _, bad = kernels.ffbs(full["init_probs"], full["trans_mat"], emission, data.offsets, rng.random(data.n_steps), rows)
        kernels.raise_if_impossible(bad, data.offsets)
        if self.table:
            init_c, trans_c, emission_c = kernels.path_counts(path, rows, data.offsets, self.n_states, emission.shape[1])
            return {"init_counts": init_c, "trans_counts": trans_c, **self.family.table_stats(emission_c)}
        return self._path_stats(data, path)

    def _path_stats(self, data, path: np.ndarray) -> dict:
        """Complete-data statistics of one state path (T,)."""
        K = self.n_states
        init_c, trans_c, _ = kernels.path_counts(path, np.zeros(path.size, np.int64), data.offsets, K, 1)
        labels = path if data.all_observed else path[data.observed]
        return {"init_counts": init_c, "trans_counts": trans_c, **self.family.label_stats(self.family.rows(data), labels, K)}

    # -- hooks: VB ----------------------------------------------------------------------
    def initial_factors(self, data, rng) -> dict:
        """VB start: the conjugate posteriors given the expected statistics at the default start."""
        data = self.check_data(data)
        stats, _ = self.expected_stats(data, self.initial_params(data, rng))
        return self.conditional_posterior(stats)

    def vb_expected_stats(self, data, factors):
        """VB update of q(z): forward-backward with ``exp(E_q[log init])``, ``exp(E_q[log trans])``
        and the family's expected log densities (or sub-normalised table).

        The weights are sub-normalised, so the product of the scaling constants is the
        normaliser Z of q(z) rather than a likelihood; with that optimal q(z),
        ``E_q[log p(x, z | theta)] - E_q[log q(z)] = log Z`` (Beal 2003, eq. 3.47), so the ELBO is
        ``log Z - sum KL(q(theta) || p(theta))`` (the driver subtracts the KLs).

        Returns
        -------
        stats : dict of expected statistics under q(z)
        data_term : float
            ``log Z`` summed over sequences.
        """
        data = self.check_data(data)
        fixed = self.fixed_init_probs
        init = np.exp(factors["init_probs"].expected_log()) if fixed is None else np.asarray(fixed, float)
        return self._pass(data, init, np.exp(factors["trans_mat"].expected_log()), factors, expected_log=True)

    # -- hooks: exact -------------------------------------------------------------------
    def exact_posterior(self, data):
        """The exact posterior by enumerating every state path that can emit the data (short
        data only; see :func:`latentzoo.models.hmm.exact.exact_posterior`)."""
        from .exact import exact_posterior

        return exact_posterior(self, self.check_data(data))

    # -- PyMC declaration (models/hmm/pymc.py; imported here so that PyMC loads only when used) --
    def pymc_initial_point(self, params) -> dict[str, np.ndarray]:
        """The PyMC free variables at ``params``, probabilities kept off the simplex's boundary (an
        EM solution often has ``init_probs`` exactly (1, 0), where the simplex transform is infinite)."""
        point = {}
        for name in ("init_probs", "trans_mat"):
            if name in self.param_names:
                point[name] = inside_simplex(params[name])
        return {**point, **self.family.pymc_initial_point(params)}

    def pymc_model(self, data, marginalized: bool = True):
        """The PyMC declaration of the same priors and likelihood (see
        :func:`latentzoo.models.hmm.pymc.pymc_model`): the states summed out by the
        forward-backward Op (NUTS, ADVI, MAP), or explicit ``states`` for ``pymc_gibbs``."""
        from .pymc import pymc_model

        return pymc_model(self, data, marginalized)


class DataDrivenEmissions:
    """Mixin of a model whose emission family can fill hyperparameters from the data (the
    :class:`~latentzoo.models.core.protocols.DataDrivenPrior` and
    :class:`~latentzoo.models.core.protocols.ChunkedDataPrior` hooks); the family's
    hyperparameters are fields of the model under the same names."""

    @property
    def data_driven(self) -> bool:
        return self.family.data_driven

    def with_data_prior(self, data):
        """This model with every data-driven hyperparameter fixed from the observed rows of ``data``."""
        if not self.family.data_driven:
            return self
        rows = self.family.rows(self.check_data(data))
        return replace(self, **self.family.data_prior(rows, self.n_states))

    def data_prior_stats(self, data) -> dict:
        """What the data-driven prior needs from ``data``, combinable over chunks by ``combine_stats``."""
        return self.family.data_prior_stats(self.family.rows(self.check_data(data)))

    def with_data_prior_stats(self, stats):
        """:meth:`with_data_prior` from the combined :meth:`data_prior_stats` of all partitions."""
        if not self.family.data_driven:
            return self
        return replace(self, **self.family.data_prior_from_stats(stats, self.n_states))
