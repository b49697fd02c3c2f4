"""Mixture of multivariate Bernoulli distributions over binary vectors (Bishop 2006, section 9.3.3).

Generative model (K components, D binary features)::

    weights ~ Dirichlet(weights_prior * 1_K)                           (component,)
    probs[k, d] ~ Beta(a, b)          (a, b) = probs_prior              (component, feature)
    z_n ~ Categorical(weights),   x_nd | z_n ~ Bernoulli(probs[z_n, d])

Everything but the constructor and the example data comes from
:class:`~latentzoo.models.mixture.finite.FiniteMixture` and
:class:`~latentzoo.models.families.bernoulli.BernoulliFamily` (NaN marks a missing feature).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.base import check_prior_pair
from ..core.protocols import FEATURE_ROWS, DemoPlan
from ..families.bernoulli import BernoulliFamily
from .finite import FiniteMixture

__all__ = ["BernoulliMixture"]


@dataclass(frozen=True)
class BernoulliMixture(FiniteMixture):
    """Mixture of K products of D Bernoullis, with Beta priors on every probability.

    Parameters
    ----------
    n_components : int, default 10
        K >= 1.
    n_features : int, default 64
        D >= 1 (64: the 8x8 digits of :meth:`default_data`).
    probs_prior : pair of float, default (1, 1)
        The Beta(a, b) prior of every ``probs[k, d]`` (uniform by default, so that MAP-EM's
        probabilities are the clusters' frequencies).
    weights_prior : float or array-like of shape (K,), default 1.0 (keyword only)
        Dirichlet concentration of the weights.

    Notes
    -----
    Parameters: ``weights`` (component,), ``probs`` (component, feature); data: an (N, D) array
    of 0/1 (bool, int or float) or a pandas DataFrame, NaN for a missing feature.

    Examples
    --------
    >>> from latentzoo.models import BernoulliMixture
    >>> from latentzoo.inference import fit
    >>> model = BernoulliMixture()
    >>> idata = fit(model, model.default_data(), backend="em", random_seed=0, progressbar=False)  # doctest: +SKIP
    """

    n_components: int = 10
    n_features: int = 64
    probs_prior: tuple[float, float] = (1.0, 1.0)

    name = "bernoulli-mixture"
    lesson = None  # no lesson teaches it yet
    api_page = "latentzoo.models.BernoulliMixture"
    data_file_format = FEATURE_ROWS  # a file's rows are images, its columns pixels

    def demo_plan(self) -> DemoPlan:
        # the digits' 1797 images and 650 parameters: no tractable grouping of the assignments,
        # PyMC's explicit labels cost O(N^2) per sweep (as for the GMM), and NUTS (a long
        # reference run and the fit) took 6 of the demo's 7 minutes; the blocked Gibbs sampler is
        # the reference instead
        return DemoPlan(
            skips={
                "exact": "the exact posterior would enumerate 10^1797 assignments of the 1797 digits; "
                         "the Gibbs sampler is the reference instead",
                "pymc_gibbs": "explicit assignments cost O(N^2) per sweep in PyMC; "
                              "run `latentzoo compare bernoulli-mixture --backends pymc_gibbs` to see it",
                "nuts": "650 parameters on 1797 images take NUTS minutes; "
                        "run `latentzoo compare bernoulli-mixture --backends nuts` to see it",
            },
            reference="gibbs",
            cost_seconds=59.0,
        )

    def __post_init__(self):
        object.__setattr__(self, "probs_prior", check_prior_pair(self.probs_prior, "probs_prior"))
        super().__post_init__()

    def make_family(self) -> BernoulliFamily:
        return BernoulliFamily(self.n_features, *self.probs_prior)

    def default_data(self) -> np.ndarray:
        """scikit-learn's bundled 8x8 digits (1797 images), binarised: a pixel is 1 where its
        intensity (0..16) exceeds 7 (:func:`latentzoo.models.datasets.digits_binary`)."""
        from ..datasets import digits_binary

        return digits_binary()[0]

    def picture(self, comparison):
        """Each result's posterior-mean component images ``probs[k]`` (8x8 for 64 features, one
        row of pixels otherwise), one row of images per result: a matplotlib Figure."""
        from ..core.plotting import new_figure, result_order

        names = result_order(comparison)
        K, D = self.n_components, self.n_features
        side = int(round(np.sqrt(D)))
        shape = (side, side) if side * side == D else (1, D)
        figure = new_figure(max(5.5, 0.9 * K + 1.5), 1.0 * len(names) + 0.6)
        axes = np.atleast_2d(figure.subplots(len(names), K, squeeze=False))
        for row, name in enumerate(names):
            posterior = comparison.idatas[name].posterior
            probs = posterior["probs"].mean(("chain", "draw")).values
            weights = posterior["weights"].mean(("chain", "draw")).values
            for k in range(K):
                ax = axes[row, k]
                ax.imshow(probs[k].reshape(shape), cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(f"{weights[k]:.2f}", fontsize=7)
            axes[row, 0].set_ylabel(name, fontsize=8)
        figure.suptitle("component means probs[k] (title: weight), posterior mean per result", fontsize=9)
        return figure
