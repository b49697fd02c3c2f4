"""Exact posteriors that are finite mixtures of products of conjugate distributions.

Several models of the zoo have an exact posterior of the same form,

    p(theta | x) = sum_g w_g prod_f q_f(theta_f | g),

one component ``g`` per group of latent configurations with equal sufficient statistics, and in
each component independent conjugate factors ``q_f`` (the prior updated by that group's counts):

* ``ThreeCoins``: Beta factors for ``pi``, ``p``, ``q``, one component per (trials given to
  coin B, heads among them);
* ``CategoricalHMM`` / ``DiceHMM``: Dirichlet rows (a :class:`MaskedDirichlet` for masked
  emissions), one component per distinct count table of the state paths;
* ``PoissonHMM`` / ``PoissonMixture``: Gamma factors for the rates (and Dirichlets), one
  component per state path or assignment;
* ``NIWGaussian``: no latent variables, so a single Normal-Inverse-Wishart component.

:class:`ConjugateMixture` holds the weights and the factors, and provides the summaries the
``exact`` back-end and the tests need. The factors are the classes of
:mod:`latentzoo.models.core.conjugate`, each batched with the components on its leading axis; as in
:func:`~latentzoo.models.core.conjugate.apply_to_factors`, a joint family (Normal-Inverse-Wishart) is
keyed by the tuple of the names it returns, ``("mu", "Sigma")`` or ``("means", "covs")``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .conjugate import Beta, Dirichlet, Gamma, MaskedDirichlet, NormalInverseWishart, apply_to_factors

__all__ = ["ConjugateMixture"]


def _batch_shape(factor) -> tuple[int, ...]:
    """The shape of the independent distributions in ``factor`` (components first)."""
    if isinstance(factor, Beta):
        return factor.alpha.shape
    if isinstance(factor, Dirichlet):
        return factor.concentration.shape[:-1]
    if isinstance(factor, Gamma):
        return factor.shape.shape
    if isinstance(factor, MaskedDirichlet):
        # the rows of the (K, M) matrix are part of the batch, but not of the component axis
        return factor.concentration.shape[:-2]
    if isinstance(factor, NormalInverseWishart):
        return factor.batch_shape
    raise _unknown_family(factor)


def _take(factor, index):
    """The distributions of ``factor`` at ``index`` of its leading (component) axis.

    ``index`` may be an int (one component), an int array (one component per draw) or None
    (a new leading axis of length 1).
    """
    if isinstance(factor, Beta):
        return Beta._trusted(factor.alpha[index], factor.beta[index])
    if isinstance(factor, Dirichlet):
        return Dirichlet(factor.concentration[index])
    if isinstance(factor, Gamma):
        return Gamma._trusted(factor.shape[index], factor.rate[index])
    if isinstance(factor, MaskedDirichlet):
        return factor.select(index)
    if isinstance(factor, NormalInverseWishart):
        return NormalInverseWishart._trusted(factor.m[index], factor.kappa[index], factor.nu[index], factor.S[index])
    raise _unknown_family(factor)


def _unknown_family(factor) -> TypeError:
    return TypeError(
        "factors must be Beta, Dirichlet, Gamma, MaskedDirichlet or NormalInverseWishart distributions, "
        f"got {type(factor).__name__}"
    )


@dataclass(frozen=True)
class ConjugateMixture:
    """Mixture ``sum_g w_g prod_f factor_f(theta_f | g)`` of products of conjugate distributions.

    Parameters
    ----------
    log_weights : array-like of shape (n_components,)
        Normalised log weights ``log w_g`` (``logsumexp`` = 0).
    factors : dict
        Parameter name -> :class:`~latentzoo.models.core.conjugate.Beta`,
        :class:`~latentzoo.models.core.conjugate.Dirichlet`, :class:`~latentzoo.models.core.conjugate.Gamma` or
        :class:`~latentzoo.models.core.conjugate.MaskedDirichlet`; or a tuple of two names (``("mu",
        "Sigma")``, ``("means", "covs")``) -> :class:`~latentzoo.models.core.conjugate.NormalInverseWishart`.
        Every factor's batch shape starts with ``n_components``: factor ``f`` of component ``g`` is
        the factor's distribution at index ``g`` of that leading axis.
    log_evidence : float
        ``log p(data)``, the marginal likelihood.

    Raises
    ------
    ValueError
        If ``log_weights`` is not a non-empty 1-D array or a factor's leading batch axis does not
        have length ``n_components``.
    TypeError
        If a factor is of another family.

    Examples
    --------
    >>> import numpy as np
    >>> from latentzoo.models.core.conjugate import Beta
    >>> mixture = ConjugateMixture(np.log([0.5, 0.5]), {"p": Beta([1.0, 3.0], [3.0, 1.0])}, 0.0)
    >>> float(mixture.mean()["p"])
    0.5
    """

    log_weights: np.ndarray
    factors: dict
    log_evidence: float

    def __post_init__(self):
        log_weights = np.asarray(self.log_weights, dtype=float)
        if log_weights.ndim != 1 or log_weights.size == 0:
            raise ValueError(f"log_weights must be a non-empty 1-D array (n_components,), got shape {log_weights.shape}")
        if not isinstance(self.factors, dict) or not self.factors:
            raise TypeError(f"factors must be a non-empty dict of conjugate distributions, got {self.factors!r}")
        for key, factor in self.factors.items():
            batch = _batch_shape(factor)
            if batch[:1] != log_weights.shape:
                raise ValueError(
                    f"factors[{key!r}] must have the {log_weights.size} components on its leading batch axis, "
                    f"got batch shape {batch}"
                )
        object.__setattr__(self, "log_weights", log_weights)
        object.__setattr__(self, "log_evidence", float(self.log_evidence))

    @classmethod
    def single(cls, factors: dict, log_evidence: float) -> "ConjugateMixture":
        """The one-component mixture of unbatched ``factors`` (a conjugate posterior such as
        ``NIWGaussian``'s): every factor gains a leading component axis of length 1."""
        return cls(np.zeros(1), {key: _take(factor, None) for key, factor in factors.items()}, log_evidence)

    @property
    def n_components(self) -> int:
        return self.log_weights.size

    @property
    def weights(self) -> np.ndarray:
        """``w_g``, shape (n_components,)."""
        return np.exp(self.log_weights)

    def component(self, index) -> dict:
        """The factors of component ``index`` (an int), or of one component per entry of an int
        array ``index`` (the array's shape replaces the component axis)."""
        return {key: _take(factor, index) for key, factor in self.factors.items()}

    def _average(self, values: dict) -> dict[str, np.ndarray]:
        # [()] turns the 0-d results of scalar parameters into NumPy scalars (floats)
        weights = self.weights
        return {name: np.tensordot(weights, value, axes=1)[()] for name, value in values.items()}

    def mean(self) -> dict[str, np.ndarray]:
        """Posterior means ``sum_g w_g E[theta | g]``, each of the parameter's shape.

        Raises
        ------
        ValueError
            From a factor whose mean does not exist (``E[Sigma]`` needs ``nu > D + 1``).
        """
        return self._average(apply_to_factors(self.factors, "mean"))

    def sd(self) -> dict[str, np.ndarray]:
        """Posterior standard deviations (elementwise) of the parameters whose factor has a
        ``var()`` (Beta, Gamma); the others are left out.

        By the law of total variance, ``Var = sum_g w_g (Var_g + E_g^2) - (sum_g w_g E_g)^2``.
        """
        with_var = {key: factor for key, factor in self.factors.items() if hasattr(factor, "var")}
        means = apply_to_factors(with_var, "mean")
        second = {name: var + means[name] ** 2 for name, var in apply_to_factors(with_var, "var").items()}
        mean, second = self._average(means), self._average(second)
        return {name: np.sqrt(second[name] - mean[name] ** 2) for name in mean}

    def mode(self) -> dict[str, np.ndarray]:
        """The joint mode of a one-component mixture (of a mixture it has no closed form).

        Raises
        ------
        ValueError
            If there is more than one component.
        """
        if self.n_components != 1:
            raise ValueError(
                f"mode() is only available for a single component; this mixture has {self.n_components} "
                "(use mean(), or the mode of one component via component(g))"
            )
        return apply_to_factors(self.component(0), "mode")

    def sample(self, rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
        """Independent exact draws: a component by its weight, then every factor of it.

        Parameters
        ----------
        rng : numpy.random.Generator
        size : int
            Number of draws.

        Returns
        -------
        dict of ndarrays of shape (size, *param_shape)
        """
        if self.n_components == 1:
            # no component to choose (and no random numbers spent choosing it)
            return apply_to_factors(self.component(0), "sample", rng, size)
        component = rng.choice(self.n_components, size=size, p=self.weights)
        return apply_to_factors(self.component(component), "sample", rng)
