"""The statistics of simulation-based calibration: ranks, thinning and the uniformity checks.

Simulation-based calibration (SBC; Talts et al. 2018, arXiv:1804.06788) draws ``theta ~ p(theta)``,
``y ~ p(y | theta)``, fits the model to ``y`` and ranks ``theta`` among ``L`` posterior draws. If the
draws come from the true posterior and are independent, the rank is uniform on ``0..L``. This
module holds the pieces that act on ranks, independent of any model or back-end:

* :func:`thinning_stride` -- keep every ``s``-th draw so that the kept draws are nearly
  independent (``s`` from the bulk ESS of arviz-stats); autocorrelated chains otherwise give
  U-shaped rank histograms even when the sampler is right;
* :func:`rank_with_ties` and :func:`pit_from_ranks` -- ranks with ties broken at random, and their
  continuous version ``u = (rank + V) / (L + 1)``, ``V ~ Uniform(0, 1)``, which is exactly
  Uniform(0, 1) under calibration whatever ``L`` is (so simulations thinned differently can be
  pooled);
* :func:`histogram_pvalue` -- Pearson's chi-square test (scipy) of the rank histogram;
* :func:`ecdf_band` -- the simultaneous ECDF band of Säilynoja, Bürkner & Vehtari (2022), computed
  by arviz-stats (``arviz_stats.ecdf_utils.ecdf_pit``), and whether the ECDF stays inside it;
* :func:`vsbc_pvalue` -- VSBC's symmetry test (Yao et al. 2018): under an unbiased approximation
  the PIT values and ``1 - PIT`` have the same distribution (two-sample KS, scipy);
* :func:`dispersion_verdict` -- the direction of a miscalibration: too narrow (PIT piling up at
  both ends), too wide, or shifted.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "BAND_SIMULATIONS",
    "dispersion_verdict",
    "ecdf_band",
    "ecdf_values",
    "histogram_bins",
    "histogram_pvalue",
    "inside_band",
    "pit_from_ranks",
    "rank_with_ties",
    "thinning_stride",
    "vsbc_pvalue",
]

#: uniform samples drawn by arviz-stats to calibrate the simultaneous ECDF band
BAND_SIMULATIONS = 4000

#: a bin of the rank histogram should expect at least this many simulations (chi-square validity)
MIN_EXPECTED_PER_BIN = 5

#: the bin count of the rank histogram never exceeds this (Talts et al. use 20 bins)
MAX_BINS = 20


def thinning_stride(draws: np.ndarray) -> tuple[int, float]:
    """The stride that thins MCMC draws to about their effective sample size.

    Parameters
    ----------
    draws : ndarray of shape (chain, draw, n_quantities)

    Returns
    -------
    stride : int >= 1
        Keep every ``stride``-th draw of each chain: ``floor(chain * draw / min ESS)``, the
        smallest bulk ESS (arviz-stats) over the quantities that vary.
    min_ess : float
        That smallest ESS (NaN when no quantity varies, or with fewer than 4 draws per chain).
    """
    from arviz_stats.base import array_stats

    draws = np.asarray(draws, float)
    if draws.ndim != 3:
        raise ValueError(f"draws must have shape (chain, draw, n_quantities), got {draws.shape}")
    n_chain, n_draw, _ = draws.shape
    if n_draw < 4:
        return 1, math.nan
    varying = np.ptp(draws.reshape(n_chain * n_draw, -1), axis=0) > 0
    if not varying.any():
        return 1, math.nan
    # (n_quantities, chain, draw): arviz-stats reduces the last two axes
    ess = np.asarray(array_stats.ess(np.moveaxis(draws[..., varying], -1, 0), method="bulk"), float)
    ess = ess[np.isfinite(ess) & (ess > 0)]
    if not ess.size:
        return 1, math.nan
    min_ess = float(ess.min())
    return max(1, int((n_chain * n_draw) // min_ess)), min_ess


def rank_with_ties(thinned: np.ndarray, truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The rank of each true value among the draws, ties broken uniformly at random.

    Parameters
    ----------
    thinned : ndarray of shape (L, n_quantities)
    truth : ndarray of shape (n_quantities,)
    rng : numpy.random.Generator

    Returns
    -------
    int ndarray of shape (n_quantities,), values in ``0..L``
        ``#(draws < truth) + K`` with ``K`` uniform on ``0..#(draws == truth)``: a point estimate
        or a discrete quantity that equals the truth then still gets a uniform rank.
    """
    below = np.sum(thinned < truth, axis=0)
    equal = np.sum(thinned == truth, axis=0)
    return below + rng.integers(0, equal + 1)


def pit_from_ranks(ranks, n_ranked, rng: np.random.Generator) -> np.ndarray:
    """Continuous PIT values ``(rank + V) / (L + 1)``, ``V ~ Uniform(0, 1)``.

    Parameters
    ----------
    ranks : int array of shape (n_simulations, n_quantities)
    n_ranked : int array of shape (n_simulations,)
        ``L``, the number of draws each simulation ranked against.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of shape (n_simulations, n_quantities), in (0, 1)
    """
    ranks = np.asarray(ranks, float)
    n_ranked = np.asarray(n_ranked, float)[:, None]
    return (ranks + rng.random(ranks.shape)) / (n_ranked + 1.0)


def histogram_bins(n_simulations: int) -> int:
    """Bins of the rank histogram: as many as keep at least 5 expected counts, 2 to 20."""
    return int(min(MAX_BINS, max(2, n_simulations // MIN_EXPECTED_PER_BIN)))


def histogram_pvalue(pit: np.ndarray) -> np.ndarray:
    """Pearson's chi-square test of uniformity of the binned PIT values (scipy.stats.chisquare).

    Parameters
    ----------
    pit : ndarray of shape (n_simulations, n_quantities)

    Returns
    -------
    ndarray of shape (n_quantities,)
        The p-value per quantity; small values say the rank histogram is not flat.
    """
    from scipy import stats

    pit = np.asarray(pit, float)
    n_bins = histogram_bins(pit.shape[0])
    bins = np.minimum((pit * n_bins).astype(int), n_bins - 1)
    counts = np.stack([np.bincount(column, minlength=n_bins) for column in bins.T])
    return np.asarray(stats.chisquare(counts, axis=1).pvalue, float)


def ecdf_band(n_simulations: int, prob: float, rng: np.random.Generator):
    """The simultaneous ``prob`` band of the ECDF of ``n_simulations`` uniform values.

    Computed by arviz-stats (``ecdf_pit``, the simulation method of Säilynoja et al. 2022): the
    whole ECDF of uniform values stays inside the band with probability ``prob``.

    Returns
    -------
    eval_points, lower, upper : ndarray of shape (n_simulations + 1,)
        The band at ``eval_points`` (0, 1/n, ..., 1).
    """
    from arviz_stats.ecdf_utils import ecdf_pit

    # the band depends only on n and prob; the values passed are not used for it
    eval_points, _, lower, upper = ecdf_pit(np.linspace(0, 1, n_simulations), prob, BAND_SIMULATIONS, rng=rng)
    return eval_points, lower, upper


def inside_band(pit: np.ndarray, band) -> np.ndarray:
    """Whether each quantity's PIT ECDF stays inside the band at every evaluation point.

    Parameters
    ----------
    pit : ndarray of shape (n_simulations, n_quantities)
    band : (eval_points, lower, upper) from :func:`ecdf_band`

    Returns
    -------
    bool ndarray of shape (n_quantities,)
    """
    eval_points, lower, upper = band
    ecdf = ecdf_values(pit, eval_points)
    return np.all((ecdf >= lower[:, None] - 1e-12) & (ecdf <= upper[:, None] + 1e-12), axis=0)


def ecdf_values(pit: np.ndarray, eval_points: np.ndarray) -> np.ndarray:
    """The ECDF of each column of ``pit`` at ``eval_points``, shape (n_points, n_quantities)."""
    ordered = np.sort(np.asarray(pit, float), axis=0)
    return np.stack([np.searchsorted(column, eval_points, side="right") for column in ordered.T], axis=1) / len(
        ordered
    )


def vsbc_pvalue(pit: np.ndarray) -> np.ndarray:
    """VSBC's test (Yao et al. 2018): are the PIT values symmetric about 1/2?

    An approximation that is right on average gives PIT values distributed like ``1 - PIT``; a
    biased one does not. Two-sample Kolmogorov-Smirnov test (scipy) of ``pit`` against ``1 - pit``.

    Returns
    -------
    ndarray of shape (n_quantities,)
    """
    from scipy import stats

    pit = np.asarray(pit, float)
    return np.array([stats.ks_2samp(column, 1.0 - column).pvalue for column in pit.T], float)


def dispersion_verdict(pit: np.ndarray, alpha: float) -> list[str]:
    """The direction of a miscalibration, per quantity ("" when none is significant at ``alpha``).

    * ``"under-dispersed"``: the true value falls inside the central 50% of the PIT range less
      often than half the time (exact binomial test): the posterior is too narrow;
    * ``"over-dispersed"``: more often than half: too wide;
    * ``"posterior too low"`` / ``"posterior too high"``: the truth lies above (below) the
      posterior median more often than half the time (binomial test).

    When both tests are significant, the one with the smaller p-value names the departure (a shifted
    posterior also holds the truth in its centre less often).
    """
    from scipy import stats

    pit = np.asarray(pit, float)
    n = pit.shape[0]
    verdicts = []
    for column in pit.T:
        central = int(np.sum(np.abs(column - 0.5) < 0.25))
        above = int(np.sum(column > 0.5))
        spread = stats.binomtest(central, n, 0.5).pvalue
        shift = stats.binomtest(above, n, 0.5).pvalue
        if min(spread, shift) >= alpha:
            verdicts.append("")
        elif spread < shift:  # a shifted posterior also misses the centre: name the stronger departure
            verdicts.append("under-dispersed" if central < n / 2 else "over-dispersed")
        else:
            verdicts.append("posterior too low" if above > n / 2 else "posterior too high")
    return verdicts
