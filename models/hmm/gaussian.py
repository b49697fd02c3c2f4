"""Hidden Markov model with Gaussian emissions: ``GaussianHMM``.

Generative model (one sequence; many sequences share the parameters)::

    init_probs ~ Dirichlet(init_prior)                         (state,)
    trans_mat[i] ~ Dirichlet(trans_prior[i])                   (state, state_next)
    covs[k] ~ IW(nu0, S0),  means[k] | covs[k] ~ N(m0[k], covs[k] / kappa0)
    z_1 ~ Categorical(init_probs),  z_t | z_t-1 ~ Categorical(trans_mat[z_t-1])
    x_t | z_t ~ N(means[z_t], covs[z_t])                       x_t in R^D

Options: ``covs=`` fixes known covariances (then ``means[k] ~ N(m0[k], covs[k] / kappa0)``,
:class:`~latentzoo.models.hmm.gaussian_priors.NormalKnownCovariance`); ``init_probs=`` fixes the
initial distribution; ``m0`` of shape (K, D) gives each state its own prior mean; ``trans_prior``
as a (K, K) matrix is a sticky prior (a larger diagonal favours staying). Unset ``m0``, ``nu0``
and ``S0`` are filled from the data as for the Gaussian mixture (Fraley & Raftery 2007: the data
mean, D + 2, cov(x) / K^(2/D)).

Everything given the parameters is the categorical HMM's machinery applied to a (T, K) matrix of
log emission densities (:func:`latentzoo.models.hmm.kernels.log_emission_smooth`, rows shifted
by their maximum so nothing underflows); the weighted statistics of the Gaussian mixture
(:func:`~latentzoo.models.gaussian.stats.component_stats`) turn the smoothed state probabilities into
each state's counts, means and scatters. Back-ends:

* ``em``: Baum-Welch with the NIW (or Normal) and Dirichlet modes as M-step (``mle=True``:
  maximum likelihood with ``reg_covar`` on the covariances' diagonal, scikit-learn's and the
  Gaussian mixture's convention);
* ``vb``: forward-backward with ``exp(E_q[log theta])`` and the expected log densities of the
  NIW factors (Beal 2003, ch. 3; Bishop 2006, eq. 10.64-10.67); ELBO = log Z - KL;
* ``gibbs``: FFBS for the state paths, then the conjugate draws;
* ``exact``: tiny data only, every state path enumerated (each gives a conjugate posterior);
* ``nuts``, ``advi``, ``fullrank_advi``, ``map``: the PyMC declaration
  (:mod:`latentzoo.models.hmm.gaussian_pymc`) with the generalised forward-backward Op;
  ``pymc_gibbs``: explicit states, short sequences.

Missing observations (rows of NaN) get a log emission density of 0 in every back-end.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..core.base import (
    DegenerateComponentError,
    LatentModel,
    as_tuple,
    check_positive,
    check_rng,
    check_spd,
    numeric_array,
)
from ..core.conjugate import Dirichlet, NormalInverseWishart
from ..core.conjugate_mixture import ConjugateMixture
from ..core.protocols import FEATURE_ROWS, DemoPlan
from ..core.sizes import check_count, check_parameter_size
from ..core.stats_combine import combine_centred
from ..gaussian.data import mean_round_off
from ..gaussian.kernels import expected_log_densities, log_gaussian_densities
from ..gaussian.priors import data_driven_scale, scale_from_covariance
from ..gaussian.stats import component_stats, hard_component_stats
from . import kernels
from .data import _freeze_prior
from .gaussian_data import GaussianSequences, check_sequences
from .gaussian_params import GaussianHMMParams
from .gaussian_priors import NormalKnownCovariance

__all__ = ["GaussianHMM", "GaussianSequences"]

#: kappa0 of the default prior: each state mean is pulled to m0 with 1/100 of an observation
DATA_DRIVEN_KAPPA0 = 0.01
#: maximum-likelihood EM adds this to every covariance's diagonal (as GaussianMixture)
REG_COVAR = 1e-6
#: ``latent_posterior`` returns per-draw state probabilities only up to this many entries
LATENT_MAX_ENTRIES = 5_000_000
NIW_KEY = ("means", "covs")


@dataclass(frozen=True)
class GaussianHMM(GaussianHMMParams, LatentModel):
    """Hidden Markov model with full-covariance Gaussian emissions and conjugate priors.

    Parameters
    ----------
    n_states : int >= 2
        K.
    n_features : int >= 1
        D, the dimension of each observation.
    init_prior : float or array-like of shape (K,), default 1
        Dirichlet concentration of ``init_probs``.
    trans_prior : float, array-like of shape (K,) or (K, K), default 1
        Dirichlet concentration of each row of ``trans_mat`` (a (K,) row is used for every row;
        a matrix with a larger diagonal is a sticky prior).
    m0 : array-like of shape (D,) or (K, D), optional
        Prior mean of every state's mean, or one per state; None: the data mean.
    kappa0 : float, default 0.01
        Pseudo-observations behind m0.
    nu0 : float, optional
        Inverse-Wishart degrees of freedom (> D - 1); None: D + 2.
    S0 : array-like of shape (D, D), optional
        Inverse-Wishart scale (E[covs[k]] = S0 / (nu0 - D - 1)); None: cov(data) / K^(2/D).
    covs : array-like of shape (K, D, D), optional
        Known covariances (then not estimated, and ``nu0``/``S0`` are not used).
    init_probs : array-like of shape (K,), optional
        A known initial distribution (then not estimated).
    reg_covar : float, default 1e-6
        Added to each covariance's diagonal by maximum-likelihood EM (``mle=True``) only.

    Notes
    -----
    Parameters ``init_probs`` (state,), ``trans_mat`` (state, state_next), ``means`` (state,
    feature), ``covs`` (state, feature, feature_bis), the fixed ones left out. States are
    exchangeable (``label_dim = "state"``) when the priors treat them alike.

    Examples
    --------
    >>> from latentzoo.models import GaussianHMM
    >>> hmm = GaussianHMM(n_states=2, n_features=1)
    >>> params = {"init_probs": [0.5, 0.5], "trans_mat": [[0.9, 0.1], [0.1, 0.9]],
    ...           "means": [[0.0], [3.0]], "covs": [[[1.0]], [[1.0]]]}
    >>> x, states = hmm.simulate(params, 50, rng=0)
    >>> x.shape
    (50, 1)
    """

    n_states: int = 2
    n_features: int = 1
    init_prior: object = 1.0
    trans_prior: object = 1.0
    m0: object = None
    kappa0: float = DATA_DRIVEN_KAPPA0
    nu0: float | None = None
    S0: object = None
    covs: object = None
    init_probs: object = None
    reg_covar: float = REG_COVAR

    name = "gaussian-hmm"
    observation_dim = "sequence"
    paired_label_dims = {"state_next": "state"}
    data_file_format = FEATURE_ROWS  # a file is one sequence of feature rows

    def __post_init__(self):
        K = check_count(self.n_states, "n_states", 2)
        D = check_count(self.n_features, "n_features", 1)
        object.__setattr__(self, "n_states", K)
        object.__setattr__(self, "n_features", D)
        check_parameter_size({"n_states": K, "n_states_next": K}, "the transition matrix")
        check_parameter_size({"n_states": K, "n_features": D, "n_features_bis": D}, "the covariances")
        for name in ("init_prior", "trans_prior"):
            object.__setattr__(self, name, _freeze_prior(getattr(self, name)))
        self._dirichlet_arrays()  # validates the Dirichlet priors now, naming them
        object.__setattr__(self, "kappa0", check_positive(self.kappa0, "kappa0"))
        object.__setattr__(self, "reg_covar", check_positive(self.reg_covar, "reg_covar"))
        if self.m0 is not None:
            m0 = numeric_array(self.m0, "m0", f"an array of shape (D,) = ({D},) or (K, D) = ({K}, {D})")
            if m0.shape not in ((D,), (K, D)):
                raise ValueError(f"m0 must have shape (D,) = ({D},) or (K, D) = ({K}, {D}), got {m0.shape}")
            if not np.all(np.isfinite(m0)):
                raise ValueError("m0 must be finite")
            object.__setattr__(self, "m0", as_tuple(m0))
        if self.S0 is not None:
            S0 = numeric_array(self.S0, "S0", f"a ({D}, {D}) array of numbers")
            if S0.shape != (D, D) or not np.all(np.isfinite(S0)):
                raise ValueError(f"S0 must be a finite ({D}, {D}) matrix, got shape {S0.shape}")
            object.__setattr__(self, "S0", as_tuple(check_spd(S0, "S0")))
        if self.nu0 is not None:
            nu0 = check_positive(self.nu0, "nu0")
            if nu0 <= D - 1:
                raise ValueError(f"nu0 must be > D - 1 = {D - 1}, got {nu0}")
            object.__setattr__(self, "nu0", nu0)
        if self.covs is not None:
            covs = numeric_array(self.covs, "covs", f"an array of shape (K, D, D) = ({K}, {D}, {D})")
            if covs.shape != (K, D, D) or not np.all(np.isfinite(covs)):
                raise ValueError(f"covs must be a finite array of shape (K, D, D) = ({K}, {D}, {D}), got shape {covs.shape}")
            object.__setattr__(self, "covs", as_tuple(check_spd(covs, "covs")))
        if self.init_probs is not None:
            init = numeric_array(self.init_probs, "init_probs", f"a probability vector of shape ({K},)")
            if init.shape != (K,) or not np.all(np.isfinite(init)) or np.any(init < 0) or abs(init.sum() - 1) > 1e-6:
                raise ValueError(f"init_probs must be {K} probabilities >= 0 summing to 1, got {self.init_probs!r}")
            object.__setattr__(self, "init_probs", as_tuple(init / init.sum()))

    # -- structure ----------------------------------------------------------------------
    @property
    def label_dim(self) -> str | None:
        """``"state"`` when relabelling the states leaves the prior unchanged."""
        K = self.n_states
        arrays = self._dirichlet_arrays()
        trans = arrays["trans_prior"]
        off_diagonal = trans[~np.eye(K, dtype=bool)]
        alike = (
            np.all(arrays["init_prior"] == arrays["init_prior"][0])
            and np.all(np.diag(trans) == trans[0, 0])
            and np.all(off_diagonal == off_diagonal[0])
            and (self.m0 is None or np.ndim(self.m0) == 1 or np.all(np.asarray(self.m0) == np.asarray(self.m0)[0]))
            and (self.covs is None or np.all(np.asarray(self.covs) == np.asarray(self.covs)[0]))
            and (self.init_probs is None or np.all(np.asarray(self.init_probs) == self.init_probs[0]))
        )
        return "state" if alike else None

    def param_dims(self) -> dict[str, tuple[str, ...]]:
        dims = {
            "init_probs": ("state",),
            "trans_mat": ("state", "state_next"),
            "means": ("state", "feature"),
            "covs": ("state", "feature", "feature_bis"),
        }
        if self.init_probs is not None:
            del dims["init_probs"]
        if self.covs is not None:
            del dims["covs"]
        return dims

    def latent_dims(self) -> dict[str, tuple[str, ...]]:
        return {"state_probs": ("time", "state")}

    def check_data(self, data) -> GaussianSequences:
        """Validate one sequence or many (see :func:`~latentzoo.models.hmm.gaussian_data.check_sequences`).

        Parameters
        ----------
        data : (T, D) array, DataFrame, 1-D array (D = 1), (S, T, D) array, a list of those, or
            GaussianSequences. Rows of NaN are missing observations.

        Returns
        -------
        GaussianSequences
        """
        return check_sequences(data, self.n_features)

    def n_observations(self, data) -> int:
        return self.check_data(data).n_sequences

    def objective_scale(self, data) -> int:
        # tolerances per time step: one long sequence is not one observation
        return self.check_data(data).n_steps

    def objective_round_off(self, data) -> float:
        data = self.check_data(data)
        return mean_round_off(data.x[data.observed])

    def coords(self, data) -> dict[str, list]:
        data = self.check_data(data)
        features = list(data.feature_names) if data.feature_names is not None else list(range(self.n_features))
        states = list(range(self.n_states))
        return {
            "state": states, "state_next": states, "feature": features, "feature_bis": features,
            "sequence": list(range(data.n_sequences)), "time": list(range(data.n_steps)),
        }

    def observed_data(self, data) -> dict[str, tuple[np.ndarray, tuple[str, ...]]]:
        """The observations of all sequences concatenated over ``time`` (NaN rows: missing), and
        each sequence's length."""
        data = self.check_data(data)
        return {"x": (data.x, ("time", "feature")), "sequence_length": (data.lengths, ("sequence",))}

    def demo_plan(self) -> DemoPlan:
        # the exact posterior sums over every state path: 2^100 of them for the Nile's 100 years
        return DemoPlan(skips={"exact": "the exact posterior would enumerate 2^100 state paths of the Nile's "
                                        "100 years; the long NUTS run is the reference instead"})

    def default_data(self) -> np.ndarray:
        """The annual flow of the Nile at Aswan, 1871-1970 (10^8 m^3), as a (100, 1) array
        (for ``n_features = 1``; see :func:`latentzoo.models.datasets.nile`)."""
        if self.n_features != 1:
            raise ValueError(f"the example data (the Nile's flow) have one feature; this model has n_features = {self.n_features}")
        from ..datasets import nile

        return nile()[1][:, None]

    # -- priors -------------------------------------------------------------------------
    def _dirichlet_arrays(self) -> dict[str, np.ndarray]:
        K = self.n_states
        arrays = {}
        for name, value, shape in (("init_prior", self.init_prior, (K,)), ("trans_prior", self.trans_prior, (K, K))):
            array = numeric_array(value, name, f"a positive number or an array of shape {shape}")
            try:
                array = np.broadcast_to(array, shape).copy()
            except ValueError:
                raise ValueError(f"{name} must be a number or broadcast to shape {shape}, got shape {array.shape}") from None
            if not np.all(np.isfinite(array)) or np.any(array <= 0):
                raise ValueError(f"{name} must be finite and > 0, got {value!r}")
            arrays[name] = array
        return arrays

    @property
    def data_driven(self) -> bool:
        """True when m0, or (with the covariances estimated) nu0 or S0, is filled from the data."""
        return self.m0 is None or (self.covs is None and (self.nu0 is None or self.S0 is None))

    def with_data_prior(self, data) -> "GaussianHMM":
        """This model with every data-driven hyperparameter fixed from the observed rows of ``data``."""
        if not self.data_driven:
            return self
        data = self.check_data(data)
        x = data.x_observed
        K, D = self.n_states, self.n_features
        m0 = self.m0 if self.m0 is not None else x.mean(0)
        changes = {"m0": m0}
        if self.covs is None:
            changes["nu0"] = self.nu0 if self.nu0 is not None else D + 2.0
            if self.S0 is None:
                if x.shape[0] < 2:
                    raise ValueError("the data-driven S0 needs at least two observed rows; give S0 explicitly")
                changes["S0"] = data_driven_scale(x, K)
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return GaussianHMM(**{**fields, **changes})

    def data_prior_stats(self, data) -> dict:
        """Count, mean and scatter of the observed rows (one component's statistics), from which
        :meth:`with_data_prior_stats` sets the data-driven prior of chunked sequences."""
        x = self.check_data(data).x_observed
        return dict(zip(("counts", "means", "scatters"), component_stats(x, np.ones((x.shape[0], 1)))))

    def with_data_prior_stats(self, stats) -> "GaussianHMM":
        """:meth:`with_data_prior` from the combined :meth:`data_prior_stats` of all partitions."""
        if not self.data_driven:
            return self
        count, mean, scatter = stats["counts"][0], stats["means"][0], stats["scatters"][0]
        changes = {"m0": self.m0 if self.m0 is not None else mean}
        if self.covs is None:
            changes["nu0"] = self.nu0 if self.nu0 is not None else self.n_features + 2.0
            if self.S0 is None:
                if count < 2:
                    raise ValueError("the data-driven S0 needs at least two observed rows; give S0 explicitly")
                changes["S0"] = scale_from_covariance(scatter / count, self.n_states, mean)
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return GaussianHMM(**{**fields, **changes})

    def combine_stats(self, parts) -> dict:
        """Statistics of partitions of the sequences combined: transition counts add, each
        state's centred statistics combine pairwise (:func:`~latentzoo.models.core.stats_combine.combine_centred`)."""
        return combine_centred(parts)

    def _require_explicit_prior(self, what: str) -> None:
        if self.data_driven:
            raise ValueError(
                f"{what} needs the prior, and this GaussianHMM's prior is data-driven (m0, nu0 or S0 is None); "
                "use model.with_data_prior(data) (fit does so), or em with mle=True"
            )

    @cached_property
    def _m0_array(self) -> np.ndarray:
        return np.broadcast_to(np.asarray(self.m0, float), (self.n_states, self.n_features)).copy()

    def prior(self) -> dict:
        """``init_probs``: Dirichlet (unless fixed); ``trans_mat``: Dirichlet rows (batch K);
        ``("means", "covs")``: NIW batched over the states, or with fixed covariances
        ``means``: :class:`NormalKnownCovariance`. Only for explicit hyperparameters."""
        self._require_explicit_prior("prior()")
        return dict(self._prior)

    @cached_property
    def _prior(self) -> dict:
        # built (and validated) once: EM, Gibbs and VB ask for it at every iteration
        arrays = self._dirichlet_arrays()
        K, D = self.n_states, self.n_features
        prior = {"init_probs": Dirichlet(arrays["init_prior"]), "trans_mat": Dirichlet(arrays["trans_prior"])}
        if self.init_probs is not None:
            del prior["init_probs"]
        kappa = np.full(K, self.kappa0)
        if self.covs is None:
            S0 = np.broadcast_to(np.asarray(self.S0, float), (K, D, D)).copy()
            prior[NIW_KEY] = NormalInverseWishart(self._m0_array, kappa, np.full(K, float(self.nu0)), S0)
        else:
            prior["means"] = NormalKnownCovariance(self._m0_array, kappa, np.asarray(self.covs, float))
        return prior

    def log_prior(self, params) -> np.ndarray:
        """Sum of the Dirichlet and NIW (or Normal) log-densities, shape B (the params' batch)."""
        prior = self.prior()
        full = self._batched(params, "params")
        total = prior["trans_mat"].log_pdf(full["trans_mat"]).sum(-1)
        if "init_probs" in prior:
            total = total + prior["init_probs"].log_pdf(full["init_probs"])
        if NIW_KEY in prior:
            return total + prior[NIW_KEY].log_pdf(full["means"], full["covs"]).sum(-1)
        return total + prior["means"].log_pdf(full["means"]).sum(-1)

    # -- the emission matrix and the passes ----------------------------------------------
    @staticmethod
    def _place(data: GaussianSequences, observed_rows: np.ndarray) -> np.ndarray:
        """(T, K) C-contiguous log emission densities from the (n_observed, K) rows; 0 on missing rows."""
        if data.all_observed:
            return np.ascontiguousarray(observed_rows)
        out = np.zeros((data.n_steps, observed_rows.shape[1]))
        out[data.observed] = observed_rows
        return out

    def _log_emission(self, data: GaussianSequences, means, covs) -> np.ndarray:
        return self._place(data, log_gaussian_densities(data.x_observed, means, covs))

    def _observed_gamma(self, data: GaussianSequences, gamma: np.ndarray) -> np.ndarray:
        return gamma if data.all_observed else gamma[data.observed]

    def _pass(self, data, init, trans, log_emission):
        """Smoothing pass: (stats, total log-likelihood (or log Z for VB), gamma)."""
        log_lik, init_counts, trans_counts, gamma, bad = kernels.log_emission_smooth(init, trans, log_emission, data.offsets)
        kernels.raise_if_impossible(bad, data.offsets)
        counts, means, scatters = component_stats(data.x_observed, self._observed_gamma(data, gamma))
        stats = {"init_counts": init_counts, "trans_counts": trans_counts, "counts": counts, "means": means, "scatters": scatters}
        return stats, float(log_lik.sum()), gamma

    @staticmethod
    def _shifted(log_emission: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        shift = log_emission.max(axis=1)
        return np.exp(log_emission - shift[:, None]), shift

    def log_likelihood(self, data, params) -> np.ndarray:
        """Per-sequence log-likelihood with the states summed out.

        Parameters
        ----------
        data : sequences (see :meth:`check_data`)
        params : dict of arrays of a common batch shape B (e.g. (chain, draw))

        Returns
        -------
        ndarray of shape B + (n_sequences,)
        """
        data = self.check_data(data)
        full = self._batched(params, "params")
        batch = full["trans_mat"].shape[:-2]
        flat = {name: value.reshape((-1,) + value.shape[len(batch):]) for name, value in full.items()}
        out = np.empty((flat["trans_mat"].shape[0], data.n_sequences))
        starts = data.offsets[:-1]
        for index in range(out.shape[0]):
            lik, shift = self._shifted(self._log_emission(data, flat["means"][index], flat["covs"][index]))
            _, _, log_lik, bad = kernels.forward(flat["init_probs"][index], flat["trans_mat"][index], lik, data.offsets)
            # Gaussian densities are positive: only parameters that forbid every state fail here
            out[index] = log_lik + np.add.reduceat(shift, starts) if bad < 0 else -np.inf
        return out.reshape(batch + (data.n_sequences,))

    def filter(self, data, params):
        """Filtered state probabilities ``p(z_t | x_1..t)``: (T, K) for one sequence, or a list."""
        data = self.check_data(data)
        full = self._full(self.check_params(params))
        lik, _ = self._shifted(self._log_emission(data, full["means"], full["covs"]))
        alpha, _, _, bad = kernels.forward(full["init_probs"], full["trans_mat"], lik, data.offsets)
        kernels.raise_if_impossible(bad, data.offsets)
        return data.split(alpha)

    def posterior_states(self, data, params):
        """Smoothed state probabilities ``p(z_t | x_1..T)``: (T, K) for one sequence, or a list."""
        data = self.check_data(data)
        full = self._full(self.check_params(params))
        log_emission = self._log_emission(data, full["means"], full["covs"])
        *_, gamma, bad = kernels.log_emission_smooth(full["init_probs"], full["trans_mat"], log_emission, data.offsets)
        kernels.raise_if_impossible(bad, data.offsets)
        return data.split(gamma)

    def viterbi(self, data, params):
        """Most probable state path and its log joint probability ``log p(x, z*)``.

        Returns
        -------
        path : int ndarray of shape (T,), or a list of them
        log_prob : float, or ndarray of shape (n_sequences,)
        """
        data = self.check_data(data)
        full = self._full(self.check_params(params))
        log_emission = self._log_emission(data, full["means"], full["covs"])
        with np.errstate(divide="ignore"):
            path, log_prob = kernels.viterbi(np.log(full["init_probs"]), np.log(full["trans_mat"]), log_emission, data.offsets)
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
        x : ndarray of shape (T, D), or a list of them
        states : int ndarray of shape (T,), or a list of them
        """
        rng = check_rng(rng, "rng")
        full = self._full(self.check_params(params))
        if isinstance(size, numbers.Integral) and not isinstance(size, bool):
            lengths, single = [int(size)], True
        else:
            try:
                lengths, single = [int(n) for n in size], False
            except TypeError:
                raise TypeError(f"size must be an int or a sequence of ints, got {size!r}") from None
        if not lengths or min(lengths) < 1:
            raise ValueError(f"size must be a positive length or a non-empty list of them, got {size!r}")
        offsets = kernels.as_offsets(lengths)
        states = kernels.sample_chain(full["init_probs"], full["trans_mat"], offsets, rng.random(offsets[-1]))
        chol = np.linalg.cholesky(full["covs"])
        noise = rng.standard_normal((states.size, self.n_features))
        x = full["means"][states] + np.einsum("tij,tj->ti", chol[states], noise)
        shape = GaussianSequences(x, offsets, single)
        return shape.split(x), shape.split(states)

    # -- latent posterior ---------------------------------------------------------------
    def latent_posterior(self, data, params) -> dict[str, np.ndarray]:
        """Smoothed state probabilities for every set of parameters: ``state_probs`` of shape
        B + (T, K); empty above ``LATENT_MAX_ENTRIES`` entries (long data times many draws)."""
        data = self.check_data(data)
        full = self._batched(params, "params")
        batch = full["trans_mat"].shape[:-2]
        K = self.n_states
        n_sets = int(np.prod(batch, dtype=np.int64))
        if n_sets * data.n_steps * K > LATENT_MAX_ENTRIES:
            return {}
        flat = {name: value.reshape((-1,) + value.shape[len(batch):]) for name, value in full.items()}
        out = np.empty((n_sets, data.n_steps, K))
        for index in range(n_sets):
            log_emission = self._log_emission(data, flat["means"][index], flat["covs"][index])
            *_, gamma, bad = kernels.log_emission_smooth(flat["init_probs"][index], flat["trans_mat"][index], log_emission, data.offsets)
            out[index] = gamma if bad < 0 else np.nan
        return {"state_probs": out.reshape(batch + (data.n_steps, K))}

    # -- hooks: EM ----------------------------------------------------------------------
    def initial_params(self, data, rng, strategy: str = "kmeans++") -> dict[str, np.ndarray]:
        """Starting point for EM, Gibbs and VB.

        ``"kmeans++"`` (default): means at k-means++ centres of the observed rows, every covariance
        the pooled within-cluster covariance, the transition matrix half uniform and half the
        transition frequencies of the nearest-centre labels (plus one), a uniform initial
        distribution. ``"random"``: means at K distinct random observed rows, the data covariance,
        rows of ``trans_mat`` and ``init_probs`` drawn uniformly from the simplex (mixed half and
        half with uniform). ``"prior"``: a draw from the prior.
        """
        from .gaussian_start import initial_params

        return initial_params(self, self.check_data(data), rng, strategy)

    def expected_stats(self, data, params):
        """Baum-Welch E-step.

        Returns
        -------
        stats : dict with ``init_counts`` (K,), ``trans_counts`` (K, K), and each state's
            weighted ``counts`` (K,), ``means`` (K, D) and ``scatters`` (K, D, D)
        log_lik : float
            ``log p(x | params)`` summed over sequences.
        """
        data = self.check_data(data)
        full = self._full({name: np.asarray(value, float) for name, value in params.items()})
        log_emission = self._log_emission(data, full["means"], full["covs"])
        stats, log_lik, _ = self._pass(data, full["init_probs"], full["trans_mat"], log_emission)
        return stats, log_lik

    def conditional_posterior(self, stats, mle: bool = False) -> dict:
        """Conjugate posteriors given (expected or complete) statistics.

        With ``mle=True`` the priors are the flat limits (Dirichlet(1); NIW with kappa = 0,
        nu = -(D + 2), S = 0, or a Normal with kappa = 0), whose modes are the maximum-likelihood
        estimates, and ``reg_covar`` is added to each covariance's diagonal.

        Raises
        ------
        DegenerateComponentError
            With ``mle=True``, for a state with no weight or whose covariance collapsed.
        """
        counts, means, scatters = stats["counts"], stats["means"], stats["scatters"]
        K, D = self.n_states, self.n_features
        if mle:
            self._check_not_collapsed(counts, scatters)
            prior = {"init_probs": Dirichlet(np.ones(K)), "trans_mat": Dirichlet(np.ones((K, K)))}
            if self.covs is None:
                scatters = scatters + (counts * self.reg_covar)[:, None, None] * np.eye(D)
                prior[NIW_KEY] = NormalInverseWishart.flat(D, (K,))
            else:
                prior["means"] = NormalKnownCovariance.flat(np.asarray(self.covs, float))
        else:
            prior = self.prior()
        posterior = {"trans_mat": prior["trans_mat"].update(stats["trans_counts"])}
        if self.init_probs is None:
            posterior = {"init_probs": prior["init_probs"].update(stats["init_counts"]), **posterior}
        if self.covs is None:
            posterior[NIW_KEY] = prior[NIW_KEY].update(counts, means, scatters)
        else:
            posterior["means"] = prior["means"].update(counts, means)
        return posterior

    def _check_not_collapsed(self, counts, scatters) -> None:
        advice = ("use the prior (em without mle=True: MAP-EM stays well defined), fewer states, or other "
                  "starting points (init, n_init)")
        for k in range(counts.size):
            if counts[k] <= 1e-10 * counts.sum():
                raise DegenerateComponentError(
                    f"maximum-likelihood EM: state {k} has no expected observation, so its mean and covariance "
                    f"are undefined; {advice}"
                )
            if self.covs is None:
                smallest = float(np.linalg.eigvalsh(scatters[k] / counts[k])[0])
                if smallest <= self.reg_covar:
                    raise DegenerateComponentError(
                        f"maximum-likelihood EM: state {k} collapsed onto {counts[k]:.3g} effective observation(s): "
                        f"its covariance has an eigenvalue {smallest:.3g} <= reg_covar = {self.reg_covar:g}, so the "
                        f"likelihood grows without bound there; {advice}"
                    )

    # -- hooks: Gibbs -------------------------------------------------------------------
    def sample_stats(self, data, params, rng):
        """One FFBS draw of every state path; the complete-data statistics."""
        data = self.check_data(data)
        full = self._full(params)
        lik, _ = self._shifted(self._log_emission(data, full["means"], full["covs"]))
        path, _, bad = kernels.ffbs(full["init_probs"], full["trans_mat"], lik, data.offsets, rng.random(data.n_steps))
        kernels.raise_if_impossible(bad, data.offsets)
        return self._path_stats(data, path)

    def _path_stats(self, data: GaussianSequences, path: np.ndarray) -> dict:
        K = self.n_states
        init_counts, trans_counts, _ = kernels.path_counts(path, np.zeros(path.size, np.int64), data.offsets, K, 1)
        labels = path if data.all_observed else path[data.observed]
        counts, means, scatters = hard_component_stats(data.x_observed, labels, K)
        return {"init_counts": init_counts, "trans_counts": trans_counts, "counts": counts, "means": means, "scatters": scatters}

    # -- hooks: VB ----------------------------------------------------------------------
    def initial_factors(self, data, rng) -> dict:
        """VB start: the conjugate posteriors given the expected statistics at a k-means++ start."""
        data = self.check_data(data)
        stats, _ = self.expected_stats(data, self.initial_params(data, rng))
        return self.conditional_posterior(stats)

    def vb_expected_stats(self, data, factors):
        """VB update of q(z): forward-backward with ``exp(E_q[log init])``, ``exp(E_q[log trans])``
        and the expected log densities ``E_q[log N(x_t | means_k, covs_k)]``.

        The transition weights are sub-normalised, so the scaling constants multiply up to the
        normaliser Z of q(z); with that q(z), ``E_q[log p(x, z | theta)] - E_q[log q(z)] = log Z``
        (Beal 2003, eq. 3.47), and the driver subtracts the factors' KL divergences.

        Returns
        -------
        stats : dict of expected statistics under q(z)
        data_term : float
            ``log Z`` summed over sequences.
        """
        data = self.check_data(data)
        init = np.exp(factors["init_probs"].expected_log()) if self.init_probs is None else np.asarray(self.init_probs)
        trans = np.exp(factors["trans_mat"].expected_log())
        if self.covs is None:
            niw = factors[NIW_KEY]
            rows = expected_log_densities(data.x_observed, niw.m, niw.kappa, niw.nu, niw.S)
        else:
            normal = factors["means"]
            # E_q[log N(x | mu, Sigma)] = log N(x | m_q, Sigma) - tr(Sigma^-1 Sigma / kappa_q) / 2
            rows = log_gaussian_densities(data.x_observed, normal.m, normal.known_covs) - 0.5 * self.n_features / normal.kappa
        stats, log_z, _ = self._pass(data, init, trans, self._place(data, rows))
        return stats, log_z

    # -- hooks: exact -------------------------------------------------------------------
    def exact_posterior(self, data) -> ConjugateMixture:
        """The exact posterior by enumerating all K^T state paths (tiny data only; see
        :func:`latentzoo.models.hmm.gaussian_exact.exact_posterior`)."""
        from .gaussian_exact import exact_posterior

        return exact_posterior(self, data)

    # -- PyMC declaration (models/hmm/gaussian_pymc.py, imported only when used) ----------
    def pymc_initial_point(self, params) -> dict[str, np.ndarray]:
        """The PyMC free variables at ``params``, probabilities kept off the simplex's boundary: an
        EM solution often has ``init_probs`` exactly (1, 0) (one sequence), where PyMC's simplex
        transform is infinite."""
        point = {name: np.asarray(params[name], float) for name in self.param_names}
        for name in ("init_probs", "trans_mat"):
            if name in point:
                inside = np.maximum(point[name], 1e-8)
                point[name] = inside / inside.sum(-1, keepdims=True)
        return point

    def pymc_model(self, data, marginalized: bool = True):
        """The PyMC declaration of the same priors and likelihood (see
        :func:`latentzoo.models.hmm.gaussian_pymc.pymc_model`): marginalised through the
        generalised forward-backward Op, or with explicit ``states`` for ``pymc_gibbs``."""
        from .gaussian_pymc import pymc_model

        return pymc_model(self, data, marginalized)

    def picture(self, comparison):
        """The series coloured by each back-end's Viterbi states, with the posterior state
        probabilities (see :func:`~latentzoo.models.hmm.gaussian_picture.gaussian_hmm_picture`)."""
        from .gaussian_picture import gaussian_hmm_picture

        return gaussian_hmm_picture(comparison)
