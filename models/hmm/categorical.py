"""Hidden Markov models with categorical emissions: ``CategoricalHMM`` and the seed's ``DiceHMM``.

Generative model (one sequence; many sequences share the parameters)::

    init_probs ~ Dirichlet(init_prior)                    (state,)
    trans_mat[i] ~ Dirichlet(trans_prior[i])              (state, state_next), one row per state
    emission_probs[k] ~ Dirichlet(emission_prior[k])      (state, symbol), over allowed symbols
    z_1 ~ Categorical(init_probs),  z_t | z_t-1 ~ Categorical(trans_mat[z_t-1])
    x_t | z_t ~ Categorical(emission_probs[z_t])

Missing observations (NaN, None, ``pandas.NA``, masked entries; see
:func:`latentzoo.models.hmm.data.check_data`) drop their emission factor: the chain still moves
through the step, which constrains the states around it, and every back-end and method (the
likelihood, filtering, smoothing, Viterbi, FFBS, the expected counts, exact enumeration and the
PyMC Op) sums over the symbol that step could have shown. The kernels see one extra emission
column of ones that the missing steps index (:meth:`HMMData.coded`); the counts of that column
are dropped before any Dirichlet update. In ``observed_data`` a missing step is the label -1
(:data:`~latentzoo.models.hmm.data.MISSING`), so results keep integer symbols through NetCDF.

An optional ``emission_mask`` (state, symbol) says which symbols a state can emit; a row's
Dirichlet lives on its allowed symbols only, so masked probabilities are exactly zero in every
back-end (EM modes, Gibbs draws, VB factors, exact draws). ``DiceHMM`` is the seed's dice game:
the states are dice (D6, D4, D8 by default), the symbols the faces 1..max(dice) as people write
them, and a die can only show its own faces.

Inference given parameters (forward, backward, smoothing, Viterbi, FFBS, expected counts) is in
:mod:`latentzoo.models.hmm.kernels`, reading and validating sequences in
:mod:`latentzoo.models.hmm.data`, the PyMC declarations in :mod:`latentzoo.models.hmm.categorical_pymc`.
This module holds the mathematics: it hands the kernels the emission table and the symbols
(they read ``emission_probs[k, x_t]`` in the loop; no (T, K) matrix is formed) and supplies the
hooks of the back-ends:

* ``em``: Baum-Welch; the M-step is the mode of the Dirichlet posteriors given the
  forward-backward expected counts (MAP under the priors; ``mle=True``: maximum likelihood);
* ``gibbs``: FFBS draws the state paths, then every row from its Dirichlet posterior;
* ``vb``: variational Bayes (MacKay 1997; Beal 2003, ch. 3): forward-backward with the
  sub-normalised parameters ``exp(E_q[log theta])``; the ELBO is the sum of the log normalisers
  of q(z) minus the KL divergences of the Dirichlet factors from the priors;
* ``exact``: for short data, the exact posterior by enumerating every state path, grouped by
  their sufficient statistics (a mixture of products of Dirichlets;
  :mod:`latentzoo.models.hmm.exact`).

* ``nuts``, ``advi``, ``fullrank_advi``, ``map``: the PyMC declaration sums the states out with
  a custom PyTensor Op whose gradient comes from the same forward-backward expected counts
  (Fisher's identity; :mod:`latentzoo.models.ops.hmm_op`);
* ``pymc_gibbs``: explicit states updated by PyMC's ``CategoricalGibbsMetropolis`` one time
  step at a time (short sequences; it mixes far more slowly than FFBS, which redraws the whole
  path jointly).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..core.base import LatentModel, check_param_keys, check_rng, numeric_array
from ..core.conjugate import Dirichlet, MaskedDirichlet
from ..core.conjugate_mixture import ConjugateMixture
from ..core.protocols import DemoPlan
from ..core.sizes import check_count, check_parameter_size
from ..core.stats_combine import sum_stats
from . import data as hmm_data
from . import kernels
from .data import SEED_ROLLS, HMMData, _freeze_prior
from .exact import EXACT_MAX_PATHS, exact_posterior  # noqa: F401 (EXACT_MAX_PATHS: public here too)

__all__ = ["CategoricalHMM", "DiceHMM", "HMMData"]

#: ``latent_posterior`` returns the per-draw state probabilities only up to this many entries
#: (draws x time steps x states; 5e6 float64 is 40 MB)
LATENT_MAX_ENTRIES = 5_000_000

#: rows of a probability vector must sum to one within this tolerance
STOCHASTIC_ATOL = 1e-6


def _count(value, name: str, minimum: int) -> int:
    """:func:`check_count`, accepting a 0-d integer array where an int is documented."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    return check_count(value, name, minimum)


def _with_missing_column(data: HMMData, emission: np.ndarray) -> np.ndarray:
    """``emission`` (..., K, M) with one more column of ones when ``data`` has missing steps,
    which read it through ``data.coded(M)``: their emission factor is 1 in every kernel. Data
    without missing steps get ``emission`` itself, so the kernels' speed is unchanged."""
    if not data.n_missing:
        return emission
    return np.concatenate([emission, np.ones(emission.shape[:-1] + (1,))], axis=-1)


# ------------------------------------------------------------------------------------------
# the shared implementation
# ------------------------------------------------------------------------------------------
class _CategoricalHMMBase(LatentModel):
    """Everything both HMMs share; subclasses define the structure (``n_states``,
    ``n_symbols``, ``_mask``, ``first_label``, ``observed_name``, ``state_labels``) and priors."""

    observation_dim = "sequence"
    #: ``state_next`` indexes the same states a second time (rows and columns of trans_mat)
    paired_label_dims = {"state_next": "state"}
    first_label = 0
    observed_name = "symbols"

    # -- structure ----------------------------------------------------------------------
    @property
    def _mask(self) -> np.ndarray | None:
        raise NotImplementedError

    @property
    def state_labels(self) -> list:
        return list(range(self.n_states))

    def param_dims(self) -> dict[str, tuple[str, ...]]:
        return {
            "init_probs": ("state",),
            "trans_mat": ("state", "state_next"),
            "emission_probs": ("state", "symbol"),
        }

    def _param_shapes(self) -> dict[str, tuple[int, ...]]:
        K, M = self.n_states, self.n_symbols
        return {"init_probs": (K,), "trans_mat": (K, K), "emission_probs": (K, M)}

    def n_observations(self, data) -> int:
        return self.check_data(data).n_sequences

    def objective_scale(self, data) -> int:
        # EM/VB tolerances are per observed time step: one sequence of 1e6 rolls is not one
        # observation, and a missing step adds nothing to the log-likelihood
        data = self.check_data(data)
        return data.n_steps - data.n_missing

    def coords(self, data) -> dict[str, list]:
        data = self.check_data(data)
        states = self.state_labels
        return {
            "state": states,
            "state_next": states,
            "symbol": list(range(self.first_label, self.first_label + self.n_symbols)),
            # arrays, not lists: a list of 1e6 Python ints took a tenth of a second to build and convert
            "sequence": np.arange(data.n_sequences),
            "time": np.arange(data.n_steps),
        }

    def observed_data(self, data) -> dict[str, tuple[np.ndarray, tuple[str, ...]]]:
        """The symbols (as written) of all sequences concatenated over ``time``, int64 with -1
        (:data:`~latentzoo.models.hmm.data.MISSING`) where a step is missing, and each
        sequence's length (the first entry names the pointwise log-likelihood, per sequence: a
        missing step contributes nothing to it)."""
        data = self.check_data(data)
        return {
            self.observed_name: (data.labels, ("time",)),
            "sequence_length": (data.lengths, ("sequence",)),
        }

    # -- priors -------------------------------------------------------------------------
    def _prior_arrays(self):
        K, M = self.n_states, self.n_symbols
        arrays = {}
        for name, value, shape in (
            ("init_prior", self.init_prior, (K,)),
            ("trans_prior", self.trans_prior, (K, K)),
            ("emission_prior", self.emission_prior, (K, M)),
        ):
            array = numeric_array(value, name, f"a positive number or an array of shape {shape}")
            try:
                array = np.broadcast_to(array, shape).copy()
            except ValueError:
                raise ValueError(f"{name} must be a number or broadcast to shape {shape}, got shape {array.shape}") from None
            allowed = array if name != "emission_prior" or self._mask is None else array[self._mask]
            if not np.all(np.isfinite(allowed)) or np.any(allowed <= 0):
                raise ValueError(f"{name} must be finite and > 0, got {value!r}")
            arrays[name] = array
        return arrays

    @cached_property
    def _priors(self) -> dict:
        arrays = self._prior_arrays()
        emission = (
            Dirichlet(arrays["emission_prior"])
            if self._mask is None
            else MaskedDirichlet(arrays["emission_prior"], self._mask)
        )
        return {
            "init_probs": Dirichlet(arrays["init_prior"]),
            "trans_mat": Dirichlet(arrays["trans_prior"]),
            "emission_probs": emission,
        }

    @cached_property
    def _flat_priors(self) -> dict:
        # Dirichlet(1): the mode given counts is the maximum-likelihood estimate
        K, M = self.n_states, self.n_symbols
        emission = Dirichlet(np.ones((K, M))) if self._mask is None else MaskedDirichlet(np.ones((K, M)), self._mask)
        return {"init_probs": Dirichlet(np.ones(K)), "trans_mat": Dirichlet(np.ones((K, K))), "emission_probs": emission}

    def prior(self) -> dict:
        """Dirichlet priors: ``init_probs`` (K,), one per row of ``trans_mat`` (batch K) and of
        ``emission_probs`` (batch K; a :class:`MaskedDirichlet` when there is a mask)."""
        return dict(self._priors)

    def log_prior(self, params) -> np.ndarray:
        """Sum of the Dirichlet log-densities, shape B (the params' batch shape)."""
        params = self._check_param_arrays(params, "params")
        priors = self._priors
        return (
            priors["init_probs"].log_pdf(params["init_probs"])
            + priors["trans_mat"].log_pdf(params["trans_mat"]).sum(-1)
            + priors["emission_probs"].log_pdf(params["emission_probs"]).sum(-1)
        )

    # -- validation ---------------------------------------------------------------------
    def _describe_symbols(self) -> str:
        return f"integers 0..{self.n_symbols - 1}"

    @cached_property
    def _alphabet(self) -> hmm_data.Alphabet:
        mask = self._mask
        return hmm_data.Alphabet(
            n_symbols=self.n_symbols,
            first_label=self.first_label,
            description=self._describe_symbols(),
            emittable=None if mask is None else mask.any(axis=0),
            model_name=type(self).__name__,
        )

    def check_data(self, data) -> HMMData:
        """Validate one sequence or a list of sequences.

        Parameters
        ----------
        data : array-like of shape (T,), a list of array-likes of lengths (T_s,), a 2-D array
            (one sequence per row), text, or HMMData.
            ``CategoricalHMM`` symbols are 0..n_symbols-1; ``DiceHMM`` faces 1..max(dice).
            Array-likes include lists, NumPy arrays, masked arrays and pandas Series (pass a
            DataFrame's columns). Text holds integers separated by any whitespace or commas;
            several non-blank lines are several sequences, one per line. A missing step is NaN,
            None, ``pandas.NA``, a masked entry, or ``NA``/``NaN``/``?`` in text.

        Returns
        -------
        HMMData
            An ``HMMData`` validated before is returned as it is after an O(n_symbols) check
            that this model accepts its symbols (see :func:`latentzoo.models.hmm.data.check_data`).
        """
        return hmm_data.check_data(data, self._alphabet)

    def _check_param_arrays(self, params, name: str) -> dict[str, np.ndarray]:
        """Validate a params dict whose arrays may carry common leading batch dims."""
        check_param_keys(params, self.param_names, name)
        arrays, batch = {}, None
        for key, shape in self._param_shapes().items():
            try:
                array = np.asarray(params[key], dtype=float)
            except (TypeError, ValueError):
                raise TypeError(f"{name}[{key!r}] must be an array of probabilities of shape {shape}") from None
            if array.shape[array.ndim - len(shape):] != shape or array.ndim < len(shape):
                raise ValueError(f"{name}[{key!r}] must have shape {shape} (after batch dims), got {array.shape}")
            this_batch = array.shape[: array.ndim - len(shape)]
            if batch is None:
                batch = this_batch
            elif this_batch != batch:
                raise ValueError(f"{name}: every parameter must have the same batch shape, got {batch} and {this_batch} ({key!r})")
            if not np.all(np.isfinite(array)) or np.any(array < 0):
                raise ValueError(f"{name}[{key!r}] must hold finite probabilities >= 0")
            sums = array.sum(axis=-1)
            if np.any(np.abs(sums - 1.0) > STOCHASTIC_ATOL):
                worst = np.unravel_index(np.argmax(np.abs(sums - 1.0)), sums.shape)
                row = f" row {worst[-1]}" if array.ndim - len(shape) + len(shape) > 1 and len(shape) > 1 else ""
                raise ValueError(
                    f"{name}[{key!r}]{row} must sum to 1 (a probability vector), sums to {float(sums[worst]):.6g}"
                )
            arrays[key] = array
        mask = self._mask
        if mask is not None:
            leaked = np.where(mask, 0.0, arrays["emission_probs"])
            if np.any(leaked > 0):
                state, symbol = np.argwhere(leaked.reshape(-1, *mask.shape).max(axis=0) > 0)[0]
                raise ValueError(
                    f"{name}['emission_probs'][{state}, {symbol}] must be 0: state {self.state_labels[state]} "
                    f"cannot emit symbol {symbol + self.first_label} (emission_mask)"
                )
        return arrays

    def check_params(self, params, name: str = "params") -> dict[str, np.ndarray]:
        """Validate one set of parameters (no batch dims): shapes, rows that are probability
        vectors, zeros where the emission mask forbids a symbol. ``name`` is used in errors."""
        arrays = self._check_param_arrays(params, name)
        if arrays["init_probs"].ndim != 1:
            raise ValueError(f"{name} must be one set of parameters, got batch shape {arrays['init_probs'].shape[:-1]}")
        return arrays

    # -- inference given parameters -----------------------------------------------------
    @staticmethod
    def _table(data: HMMData, emission: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The kernels' ``(emission, rows)``: the (K, M) table (with the missing steps' column of
        ones) and the coded symbols, read as ``emission[k, rows[t]]``; no (T, K) matrix."""
        n_symbols = emission.shape[-1]
        table = np.ascontiguousarray(_with_missing_column(data, emission), dtype=np.float64)
        return table, data.coded(n_symbols)

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
        params = self._check_param_arrays(params, "params")
        batch = params["init_probs"].shape[:-1]
        K, M = self.n_states, self.n_symbols
        out = kernels.log_likelihood_batch(
            np.ascontiguousarray(params["init_probs"].reshape(-1, K)),
            np.ascontiguousarray(params["trans_mat"].reshape(-1, K, K)),
            np.ascontiguousarray(_with_missing_column(data, params["emission_probs"].reshape(-1, K, M))),
            data.coded(M),
            data.offsets,
        )
        return out.reshape(batch + (data.n_sequences,))

    def filter(self, data, params):
        """Filtered state probabilities ``p(z_t | x_1..t)``.

        Returns
        -------
        ndarray of shape (T, n_states) for one sequence, or a list of them.

        Raises
        ------
        ValueError
            If an observation has probability zero under every reachable state.
        """
        data = self.check_data(data)
        params = self.check_params(params)
        alpha, _, _, bad = kernels.forward_table(
            params["init_probs"], params["trans_mat"], *self._table(data, params["emission_probs"]), data.offsets
        )
        kernels.raise_if_impossible(bad, data.offsets)
        return data.split(alpha)

    def posterior_states(self, data, params):
        """Smoothed state probabilities ``p(z_t | x_1..T)`` (forward-backward).

        Returns
        -------
        ndarray of shape (T, n_states) for one sequence, or a list of them.
        """
        data = self.check_data(data)
        params = self.check_params(params)
        gamma, _, bad = kernels.smooth_table(
            params["init_probs"], params["trans_mat"], *self._table(data, params["emission_probs"]), data.offsets
        )
        kernels.raise_if_impossible(bad, data.offsets)
        return data.split(gamma)

    def viterbi(self, data, params):
        """Most probable state path and its log joint probability ``log p(x, z*)``.

        Returns
        -------
        path : int ndarray of shape (T,) of state indices (0..n_states-1), or a list of them
        log_prob : float, or ndarray of shape (n_sequences,)

        Raises
        ------
        ValueError
            If a sequence is impossible under the parameters (every path has probability 0).
        """
        data = self.check_data(data)
        params = self.check_params(params)
        with np.errstate(divide="ignore"):
            log_params = [np.log(params["init_probs"]), np.log(params["trans_mat"]),
                          np.log(_with_missing_column(data, params["emission_probs"]))]
        path, log_prob = kernels.viterbi_symbols(*log_params, data.coded(self.n_symbols), data.offsets)
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
            An int gives one sequence of that length; a sequence of ints gives a list.
        rng : numpy.random.Generator or int seed

        Returns
        -------
        data : int ndarray of shape (T,) (symbols as written: faces 1.. for dice), or a list
            Complete: no step is missing (mask or set to NaN the steps to hide).
        states : int ndarray of shape (T,) of state indices, or a list
        """
        rng = check_rng(rng, "rng")
        params = self.check_params(params)
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
        offsets = kernels.as_offsets(lengths)
        states = kernels.sample_chain(params["init_probs"], params["trans_mat"], offsets, rng.random(offsets[-1]))
        cumulative = np.cumsum(params["emission_probs"], axis=1)[states]
        uniforms = rng.random(states.size)[:, None] * cumulative[:, -1:]
        symbols = np.minimum((uniforms >= cumulative).sum(axis=1), self.n_symbols - 1)
        # a round-off guard: never return a masked symbol
        emission = params["emission_probs"]
        symbols = np.where(emission[states, symbols] > 0, symbols, np.argmax(emission[states], axis=1))
        labels = symbols + self.first_label
        fake = HMMData(labels, offsets, single, self.first_label)
        return fake.split(labels), fake.split(states)

    # -- hooks: EM ----------------------------------------------------------------------
    def initial_params(self, data, rng, strategy: str = "random") -> dict[str, np.ndarray]:
        """Starting point for EM and Gibbs.

        ``"random"``: every row uniformly from its simplex (Dirichlet(1) on the allowed entries),
        which breaks the symmetry between states; ``"prior"``: a draw from the prior.
        """
        if strategy == "random":
            source = self._flat_priors
        elif strategy == "prior":
            source = self._priors
        else:
            raise ValueError(f"init strategy must be 'random', 'prior' or a dict of params, got {strategy!r}")
        params = {name: dist.sample(rng) for name, dist in source.items()}
        # a prior with small concentrations can round entries to exactly 0, which may make the
        # data impossible; keep the start strictly inside the simplex
        floor = 1e-6
        mask = self._mask
        for name, value in params.items():
            value = np.maximum(value, floor)
            if name == "emission_probs" and mask is not None:
                value = np.where(mask, value, 0.0)
            params[name] = value / value.sum(axis=-1, keepdims=True)
        return params

    @staticmethod
    def _stats(init_counts, trans_counts, emission_counts) -> dict[str, np.ndarray]:
        return {"init_counts": init_counts, "trans_counts": trans_counts, "emission_counts": emission_counts}

    def _expected_counts(self, data: HMMData, init, trans, emission):
        M = self.n_symbols
        log_lik, init_c, trans_c, emission_c, bad = kernels.symbol_expected_counts(
            np.ascontiguousarray(init, dtype=np.float64),
            np.ascontiguousarray(trans, dtype=np.float64),
            *self._table(data, emission),
            data.offsets,
        )
        kernels.raise_if_impossible(bad, data.offsets)
        # the padding column counts the missing steps' states, which emitted nothing we saw
        return self._stats(init_c, trans_c, np.ascontiguousarray(emission_c[:, :M])), float(log_lik.sum())

    def expected_stats(self, data, params):
        """Baum-Welch E-step: forward-backward expected counts and the log-likelihood.

        Returns
        -------
        stats : dict with ``init_counts`` (K,), ``trans_counts`` (K, K), ``emission_counts`` (K, M)
        log_lik : float
            ``log p(x | params)`` summed over sequences.
        """
        data = self.check_data(data)
        init, trans, emission = (np.asarray(params[name], float) for name in self.param_names)
        return self._expected_counts(data, init, trans, emission)

    def combine_stats(self, parts) -> dict[str, np.ndarray]:
        """Statistics of partitions of the sequences combined: every count adds."""
        return sum_stats(parts)

    def conditional_posterior(self, stats, mle: bool = False) -> dict:
        """Dirichlet posteriors of every row given (expected or complete) counts.

        With ``mle=True`` the priors are replaced by Dirichlet(1), whose mode given the counts
        is the maximum-likelihood estimate (a row without counts becomes uniform).
        """
        prior = self._flat_priors if mle else self._priors
        return {
            "init_probs": prior["init_probs"].update(stats["init_counts"]),
            "trans_mat": prior["trans_mat"].update(stats["trans_counts"]),
            "emission_probs": prior["emission_probs"].update(stats["emission_counts"]),
        }

    # -- hooks: Gibbs -------------------------------------------------------------------
    def sample_stats(self, data, params, rng):
        """Gibbs step for the states: one FFBS draw of every path; complete-data counts."""
        data = self.check_data(data)
        init, trans, emission = (np.asarray(params[name], float) for name in self.param_names)
        path, _, bad = kernels.ffbs_table(init, trans, *self._table(data, emission), data.offsets, rng.random(data.n_steps))
        kernels.raise_if_impossible(bad, data.offsets)
        M = self.n_symbols
        init_c, trans_c, emission_c = kernels.path_counts(
            path, data.coded(M), data.offsets, self.n_states, M + (data.n_missing > 0)
        )
        return self._stats(init_c, trans_c, np.ascontiguousarray(emission_c[:, :M]))

    # -- hooks: VB ----------------------------------------------------------------------
    def initial_factors(self, data, rng) -> dict:
        """VB start: the Dirichlet posteriors given the expected counts at a random point."""
        data = self.check_data(data)
        stats, _ = self.expected_stats(data, self.initial_params(data, rng, "random"))
        return self.conditional_posterior(stats)

    def vb_expected_stats(self, data, factors):
        """VB update of q(z): forward-backward with ``exp(E_q[log theta])`` and its log normaliser.

        The parameters are sub-normalised (rows sum to less than one), so the product of the
        scaling constants is the normaliser ``Z`` of q(z) rather than a likelihood. With that
        optimal q(z), ``E_q[log p(x, z | theta)] - E_q[log q(z)] = log Z`` (Beal 2003, eq. 3.47),
        so the ELBO is ``log Z - sum KL(q(theta) || p(theta))`` (the driver subtracts the KLs).

        Returns
        -------
        stats : dict of expected counts under q(z)
        data_term : float
            ``log Z`` summed over sequences.
        """
        data = self.check_data(data)
        tilde = {name: np.exp(factor.expected_log()) for name, factor in factors.items()}
        return self._expected_counts(data, tilde["init_probs"], tilde["trans_mat"], tilde["emission_probs"])

    # -- hooks: exact -------------------------------------------------------------------
    def exact_posterior(self, data) -> ConjugateMixture:
        """The exact posterior by enumerating every state path that can emit the data.

        Given a path z, the rows are independent Dirichlets (prior + the path's counts), and the
        path's marginal likelihood is ``prod_rows B(prior + counts) / B(prior)``. Paths with the
        same counts contribute the same term, so paths are grouped by their counts (the seed's
        10 rolls: 3^10 = 59,049 paths, of which 5,832 can emit the rolls under the dice mask).
        Refuses above ``EXACT_MAX_PATHS`` = 2e6 possible paths.

        Returns
        -------
        ConjugateMixture
            One component per group of paths, with Dirichlet factors ``init_probs`` and
            ``trans_mat`` and a Dirichlet or MaskedDirichlet ``emission_probs``, each with the
            groups on its leading batch axis.
        """
        return exact_posterior(self, self.check_data(data))

    # -- latent posterior ---------------------------------------------------------------
    def latent_dims(self) -> dict[str, tuple[str, ...]]:
        return {"state_probs": ("time", "state")}

    def latent_posterior(self, data, params) -> dict[str, np.ndarray]:
        """Smoothed state probabilities ``p(z_t = k | x, theta)`` for every set of parameters.

        Parameters
        ----------
        data : sequences
        params : dict of arrays of a common batch shape B (e.g. (chain, draw))

        Returns
        -------
        dict with ``state_probs`` of shape B + (T, n_states) (sequences concatenated over
        ``time``); empty when that array would exceed ``LATENT_MAX_ENTRIES`` entries (long
        sequences times many draws), so that storing posteriors never exhausts memory.
        """
        data = self.check_data(data)
        params = self._check_param_arrays(params, "params")
        batch = params["init_probs"].shape[:-1]
        K, M = self.n_states, self.n_symbols
        n_sets = int(np.prod(batch, dtype=np.int64))
        if n_sets * data.n_steps * K > LATENT_MAX_ENTRIES:
            return {}
        init = params["init_probs"].reshape(-1, K)
        trans = params["trans_mat"].reshape(-1, K, K)
        emission = params["emission_probs"].reshape(-1, K, M)
        sets = []
        for index in range(n_sets):
            gamma, _, bad = kernels.smooth_table(init[index], trans[index], *self._table(data, emission[index]), data.offsets)
            if bad >= 0:  # a draw under which the data are impossible has no posterior over states
                gamma[:] = np.nan
            sets.append(gamma)
        # one set (EM, MAP) is returned without a copy: at T = 1e6 the copy cost a fifth of the pass
        out = sets[0][None] if n_sets == 1 else np.stack(sets)
        return {"state_probs": out.reshape(batch + (data.n_steps, K))}

    # -- PyMC declaration (models/hmm/categorical_pymc.py; imported here so that PyMC loads only when used) --
    def pymc_initial_point(self, params) -> dict[str, np.ndarray]:
        """The PyMC model's free variables at ``params`` (rows of masked emissions are separate
        variables over each state's allowed symbols)."""
        from .categorical_pymc import pymc_initial_point

        return pymc_initial_point(self, params)

    def pymc_model(self, data, marginalized: bool = True):
        """The PyMC declaration of the same priors and likelihood.

        Priors: ``init_probs ~ Dirichlet``, every row of ``trans_mat`` a Dirichlet (one batched
        variable), ``emission_probs`` a batched Dirichlet, or with a mask one Dirichlet per
        state over its allowed symbols (variables ``emission_probs_<state>``) assembled into the
        deterministic ``emission_probs`` with exact zeros elsewhere.

        Parameters
        ----------
        data : sequences
        marginalized : bool
            True: the states are summed out by a custom PyTensor Op
            (:mod:`latentzoo.models.ops.hmm_op`) that returns the log-likelihood and its gradient
            from one compiled forward-backward pass (Fisher's identity) — usable by NUTS, ADVI
            and find_MAP at any length. False: explicit ``states`` (dims ``time``) for PyMC's
            ``CategoricalGibbsMetropolis`` (``pymc_gibbs``); each Gibbs update evaluates the
            whole model, so a sweep costs O(T^2), and sequences are limited to
            ``latentzoo.models.hmm.categorical_pymc.PYMC_GIBBS_MAX_STEPS`` steps.
        """
        from .categorical_pymc import pymc_model

        return pymc_model(self, data, marginalized)

    def picture(self, comparison):
        """State probabilities over time at each back-end's posterior mean, with the Viterbi path: a
        matplotlib Figure (see :func:`~latentzoo.models.hmm.picture.hmm_picture`)."""
        # imported here: importing the models must not import matplotlib
        from .picture import hmm_picture

        return hmm_picture(comparison)


# ------------------------------------------------------------------------------------------
# the two models
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CategoricalHMM(_CategoricalHMMBase):
    """Hidden Markov model with categorical emissions and Dirichlet priors on every row.

    Parameters
    ----------
    n_states : int >= 2
    n_symbols : int >= 2
        Symbols are written 0..n_symbols-1.
    init_prior : float or array-like of shape (n_states,), default 1
        Dirichlet concentration of ``init_probs``.
    trans_prior : float or array-like of shape (n_states, n_states), default 1
        Dirichlet concentration of each row of ``trans_mat``.
    emission_prior : float or array-like of shape (n_states, n_symbols), default 1
        Dirichlet concentration of each row of ``emission_probs`` (on allowed symbols).
    emission_mask : bool array-like of shape (n_states, n_symbols), optional
        Which symbols each state can emit; every row needs at least one True. None allows all.

    Notes
    -----
    With no mask and scalar priors the states are exchangeable: ``label_dim = "state"`` and
    results are relabelled before comparison (``trans_mat`` along both axes). A mask or
    state-specific priors make the states distinguishable (``label_dim = None``).

    Examples
    --------
    >>> from latentzoo.models.hmm.categorical import CategoricalHMM
    >>> hmm = CategoricalHMM(n_states=2, n_symbols=3)
    >>> data, states = hmm.simulate({"init_probs": [0.5, 0.5], "trans_mat": [[0.9, 0.1], [0.2, 0.8]],
    ...                              "emission_probs": [[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]]}, 100, rng=0)
    >>> data.shape
    (100,)
    """

    n_states: int = 2
    n_symbols: int = 6
    init_prior: object = 1.0
    trans_prior: object = 1.0
    emission_prior: object = 1.0
    emission_mask: object = None

    name = "categorical-hmm"

    def __post_init__(self):
        object.__setattr__(self, "n_states", _count(self.n_states, "n_states", 2))
        object.__setattr__(self, "n_symbols", _count(self.n_symbols, "n_symbols", 2))
        # refused before any (K, M) array is made: n_symbols=10**9 would allocate gigabytes
        check_parameter_size({"n_states": self.n_states, "n_symbols": self.n_symbols}, "emission_probs")
        check_parameter_size({"n_states": self.n_states, "n_states (next)": self.n_states}, "trans_mat")
        if self.emission_mask is not None:
            try:
                mask = np.asarray(self.emission_mask)
            except (TypeError, ValueError):
                raise TypeError("emission_mask must be a boolean array of shape (n_states, n_symbols)") from None
            if mask.dtype != bool:
                raise TypeError(f"emission_mask must be a boolean array, got dtype {mask.dtype}")
            if mask.shape != (self.n_states, self.n_symbols):
                raise ValueError(
                    f"emission_mask must have shape (n_states, n_symbols) = {(self.n_states, self.n_symbols)}, got {mask.shape}"
                )
            if not np.all(mask.any(axis=1)):
                raise ValueError(f"emission_mask: state {int(np.argmin(mask.any(axis=1)))} can emit no symbol")
            object.__setattr__(self, "emission_mask", tuple(tuple(bool(v) for v in row) for row in mask))
        for name in ("init_prior", "trans_prior", "emission_prior"):
            object.__setattr__(self, name, _freeze_prior(getattr(self, name)))
        self._prior_arrays()  # validates the priors now, with messages naming them

    @property
    def _mask(self):
        return None if self.emission_mask is None else np.array(self.emission_mask, dtype=bool)

    @property
    def label_dim(self) -> str | None:
        exchangeable = self.emission_mask is None and all(
            isinstance(prior, float) for prior in (self.init_prior, self.trans_prior, self.emission_prior)
        )
        return "state" if exchangeable else None


@dataclass(frozen=True)
class DiceHMM(_CategoricalHMMBase):
    """The seed's dice game: hidden dice, observed faces 1..max(dice).

    Before each roll a die is chosen (a Markov chain over the dice), then rolled; only the
    faces are seen. A die with ``n`` faces shows 1..n, so ``emission_probs[d, f - 1] = 0`` for
    faces ``f > n`` (the mask). The states are distinct, so no relabelling is needed.

    Parameters
    ----------
    dice : tuple of int, default (6, 4, 8)
        Number of faces of each die (each >= 2); the states are the dice, in this order.
    init_prior, trans_prior, emission_prior : float or array-like, default 1
        As for :class:`CategoricalHMM`; ``emission_prior`` matters on a die's own faces only.

    Examples
    --------
    >>> from latentzoo.models.hmm.categorical import DiceHMM
    >>> dice = DiceHMM()
    >>> float(np.exp(dice.log_likelihood([1], dice.default_params()))[0]) * 72   # 13/72
    13.000000000000002
    """

    dice: tuple = (6, 4, 8)
    init_prior: object = 1.0
    trans_prior: object = 1.0
    emission_prior: object = 1.0

    name = "dice-hmm"
    label_dim = None  # the mask makes the dice distinct
    first_label = 1
    observed_name = "rolls"

    def __post_init__(self):
        if isinstance(self.dice, str | bytes) or not isinstance(self.dice, tuple | list | np.ndarray):
            raise TypeError(f"dice must be a tuple of face counts such as (6, 4, 8), got {self.dice!r}")
        dice = tuple(_count(n, "each entry of dice", 2) for n in self.dice)
        if len(dice) < 2:
            raise ValueError(f"dice must name at least two dice, got {self.dice!r}")
        # refused before any (dice, faces) array is made: a die of 10**9 faces would allocate gigabytes
        check_parameter_size({"len(dice)": len(dice), "max(dice)": max(dice)}, "dice: emission_probs")
        check_parameter_size({"len(dice)": len(dice), "len(dice) (next)": len(dice)}, "dice: trans_mat")
        object.__setattr__(self, "dice", dice)
        for name in ("init_prior", "trans_prior", "emission_prior"):
            object.__setattr__(self, name, _freeze_prior(getattr(self, name)))
        self._prior_arrays()

    @property
    def n_states(self) -> int:
        return len(self.dice)

    @property
    def n_symbols(self) -> int:
        return max(self.dice)

    @property
    def _mask(self) -> np.ndarray:
        faces = np.arange(1, self.n_symbols + 1)
        return faces[None, :] <= np.array(self.dice)[:, None]

    @property
    def state_labels(self) -> list[str]:
        names = [f"D{n}" for n in self.dice]
        if len(set(names)) < len(names):  # two dice with as many faces: number them
            names = [f"D{n}#{index}" for index, n in enumerate(self.dice)]
        return names

    def _describe_symbols(self) -> str:
        return f"faces 1..{self.n_symbols} (integers; dice {self.dice})"

    def default_params(self) -> dict[str, np.ndarray]:
        """The seed's game: uniform first choice, uniform switching, fair dice."""
        K = self.n_states
        mask = self._mask
        return {
            "init_probs": np.full(K, 1.0 / K),
            "trans_mat": np.full((K, K), 1.0 / K),
            "emission_probs": mask / mask.sum(axis=1, keepdims=True),
        }

    def demo_plan(self) -> DemoPlan:
        return DemoPlan(cost_seconds=48.0)

    def default_data(self) -> HMMData:
        """The seed's rolls ``1 6 3 5 2 7 3 5 2 4``."""
        return self.check_data(list(SEED_ROLLS))
