"""Hidden Markov model with Gaussian emissions: ``GaussianHMM``.

Generative model (one sequence; many sequences share the parameters)::

    init_probs ~ Dirichlet(init_prior)                         (state,)
    trans_mat[i] ~ Dirichlet(trans_prior[i])                   (state, state_next)
    covs[k] ~ IW(nu0, S0),  means[k] | covs[k] ~ N(m0[k], covs[k] / kappa0)
    z_1 ~ Categorical(init_probs),  z_t | z_t-1 ~ Categorical(trans_mat[z_t-1])
    x_t | z_t ~ N(means[z_t], covs[z_t])                       x_t in R^D

Options: ``covs=`` fixes known covariances (then ``means[k] ~ N(m0[k], covs[k] / kappa0)``,
:class:`~latentzoo.models.families.gaussian.NormalKnownCovariance`); ``init_probs=`` fixes the
initial distribution; ``m0`` of shape (K, D) gives each state its own prior mean; ``trans_prior``
as a (K, K) matrix is a sticky prior (a larger diagonal favours staying). Unset ``m0``, ``nu0``
and ``S0`` are filled from the data as for the Gaussian mixture (Fraley & Raftery 2007: the data
mean, D + 2, cov(x) / K^(2/D)).

Everything is the one hidden Markov model (:class:`~latentzoo.models.hmm.model.HiddenMarkovModel`)
with the Gaussian emission family (:class:`~latentzoo.models.families.gaussian.Gaussian`): a (T, K)
matrix of log emission densities, and the Gaussian mixture's weighted statistics. Back-ends:

* ``em``: Baum-Welch with the NIW (or Normal) and Dirichlet modes as M-step (``mle=True``:
  maximum likelihood with ``reg_covar`` on the covariances' diagonal, scikit-learn's and the
  Gaussian mixture's convention);
* ``vb``: forward-backward with ``exp(E_q[log theta])`` and the expected log densities of the
  NIW factors (Beal 2003, ch. 3; Bishop 2006, eq. 10.64-10.67); ELBO = log Z - KL;
* ``gibbs``: FFBS for the state paths, then the conjugate draws;
* ``exact``: tiny data only, every state path enumerated (each gives a conjugate posterior);
* ``nuts``, ``advi``, ``fullrank_advi``, ``map``: the PyMC declaration
  (:mod:`latentzoo.models.hmm.pymc`) with the forward-backward Op;
  ``pymc_gibbs``: explicit states, short sequences.

Missing observations (rows of NaN) get a log emission density of 0 in every back-end.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..core.base import as_tuple, check_positive, check_spd, freeze_prior, numeric_array
from ..core.protocols import FEATURE_ROWS, DemoPlan
from ..core.sizes import check_parameter_size
from ..families.gaussian import GaussianFamily
from .model import DataDrivenEmissions, HiddenMarkovModel

__all__ = ["GaussianHMM"]

#: kappa0 of the default prior: each state mean is pulled to m0 with 1/100 of an observation
DATA_DRIVEN_KAPPA0 = 0.01
#: maximum-likelihood EM adds this to every covariance's diagonal (as GaussianMixture)
REG_COVAR = 1e-6


@dataclass(frozen=True)
class GaussianHMM(DataDrivenEmissions, HiddenMarkovModel):
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
    lesson = "nile"
    api_page = "latentzoo.models.GaussianHMM"
    data_file_format = FEATURE_ROWS  # a file is one sequence of feature rows

    def __post_init__(self):
        self._check_sizes(n_states=(self.n_states, 2), n_features=(self.n_features, 1))
        K, D = self.n_states, self.n_features
        check_parameter_size({"n_states": K, "n_states_next": K}, "the transition matrix")
        check_parameter_size({"n_states": K, "n_features": D, "n_features_bis": D}, "the covariances")
        for name in ("init_prior", "trans_prior"):
            object.__setattr__(self, name, freeze_prior(getattr(self, name)))
        self._chain_arrays()  # validates the Dirichlet priors now, naming them
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
        arrays = self._chain_arrays()
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

    @property
    def fixed_init_probs(self):
        return self.init_probs

    @cached_property
    def family(self) -> GaussianFamily:
        return GaussianFamily(self.n_features, m0=self.m0, kappa0=self.kappa0, nu0=self.nu0, S0=self.S0, covs=self.covs,
                              reg_covar=self.reg_covar, owner="GaussianHMM")

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

    def picture(self, comparison):
        """The series coloured by each back-end's Viterbi states, with the posterior state
        probabilities (see :func:`~latentzoo.models.hmm.picture.gaussian_hmm_picture`)."""
        from .picture import gaussian_hmm_picture

        return gaussian_hmm_picture(comparison)
