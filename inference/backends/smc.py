"""``smc``: PyMC's tempered Sequential Monte Carlo (``pm.sample_smc``) on the marginalised model.

SMC moves a population of particles from the prior (inverse temperature beta = 0) to the
posterior (beta = 1) through tempered posteriors p(y | theta)^beta p(theta), reweighting,
resampling and mutating them by MCMC at every stage. Two things make it worth having beside NUTS:
a population started from the prior can hold several well-separated modes at once (the three
coins' mirror modes, the mixtures' label permutations), where one NUTS chain stays in one; and
the product of the stages' mean weights is an estimate of the log marginal likelihood
log p(y), reported here as the fit's objective (``objective_name="log-evidence"``).
"""

from __future__ import annotations

import numpy as np

from ..core import FitRecord, RawResult, nan_padded
from ..diagnostics import check_mixing
from ..options import check_bool, check_choice, check_float, check_int
from ..registry import register
from .pymc_backends import _cores, _posterior_arrays, _pymc_seed
from .unconstrained import FlatPosterior

__all__ = ["run_smc", "SMC_KERNELS"]

#: the values of the ``kernel`` option: PyMC's independent Metropolis-Hastings mutation (its
#: default) or random-walk Metropolis-Hastings
SMC_KERNELS = ("imh", "mh")


def _stage_table(values, chains: int) -> np.ndarray:
    """PyMC's per-stage statistic (one list per chain, of different lengths) as an array of
    shape (chain, stage), padded with NaN."""
    return nan_padded([values[chain] if chains > 1 else values for chain in range(chains)])


@register(
    "smc",
    requires=(),
    kind="sampler",
    library="pymc",
    description="PyMC tempered Sequential Monte Carlo on the marginalised model; its log-evidence is the objective",
)
def run_smc(
    model,
    data,
    *,
    rng,
    draws: int = 2000,
    chains: int = 2,
    cores: int | None = None,
    kernel: str = "imh",
    threshold: float = 0.5,
    correlation_threshold: float = 0.01,
    progressbar: bool = True,
) -> RawResult:
    """Tempered SMC (``pm.sample_smc``) on the marginalised model.

    Parameters
    ----------
    draws : int
        Particles per chain (each chain is an independent SMC run); the posterior has ``draws``
        draws per chain.
    chains : int
        Independent SMC runs. Their log-evidence estimates are averaged on the probability
        scale (``log mean exp``), and their spread is ``objective_spread``.
    cores : int, optional
        Runs in parallel (default: as many as there are cores, at most ``chains``).
    kernel : {"imh", "mh"}
        The mutation step: PyMC's independent Metropolis-Hastings with a Gaussian proposal fitted
        to the particles (``"imh"``), or random-walk Metropolis-Hastings (``"mh"``).
    threshold : float in (0, 1)
        The next inverse temperature keeps the effective sample size at ``threshold * draws``:
        a larger value means more, smaller stages.
    correlation_threshold : float in (0, 1)
        The mutation runs until the particles' correlation with the previous stage falls below
        this.
    progressbar : bool

    Notes
    -----
    Results are kept as they are (no thinning): after the last resampling some particles are
    copies of each other, which the ESS in the comparison table accounts for. The fit history
    holds, per chain (``restart``) and stage (``iteration``), the running log-evidence estimate
    (``log_marginal_likelihood``) and the inverse temperature (``beta``).
    """
    import pymc as pm

    draws = check_int(draws, "draws", minimum=2)
    chains = check_int(chains, "chains")
    cores = _cores(chains, cores)
    kernel = check_choice(kernel, "kernel", SMC_KERNELS)
    threshold = check_float(threshold, "threshold")
    correlation_threshold = check_float(correlation_threshold, "correlation_threshold")
    for name, value in (("threshold", threshold), ("correlation_threshold", correlation_threshold)):
        if not value < 1:
            raise ValueError(f"{name} must lie in (0, 1), got {value}")
    progressbar = check_bool(progressbar, "progressbar")
    kernel_class = pm.smc.IMH if kernel == "imh" else pm.smc.MH
    pm_model = model.pymc_model(data, marginalized=True)
    start = None
    if any(value is not None for value in pm_model.rvs_to_initial_values.values()):
        # PyMC draws SMC's first population with the model's initial-value strategies, so a
        # variable given an initval (a start for NUTS: the NIW's Sigma, the mixtures' means)
        # would start every particle at that one point, and the log-evidence estimate would be
        # wrong (measured on the NIW: -2564 and -2541 per chain against the exact -1310). The
        # population is drawn from the prior here instead, by the model's own "prior" strategy
        target = FlatPosterior(model, data)
        pm_model = target.pm_model
        start = [target.split(target.prior_starts(draws, rng)) for _ in range(chains)]
    with pm_model:
        idata = pm.sample_smc(
            start=start,
            draws=draws,
            kernel=kernel_class,
            chains=chains,
            cores=cores,
            random_seed=_pymc_seed(rng),
            progressbar=progressbar,
            compute_convergence_checks=False,
            threshold=threshold,
            correlation_threshold=correlation_threshold,
        )
    stats = idata.sample_stats
    log_evidence_path = _stage_table(stats["log_marginal_likelihood"].values, chains)
    beta_path = _stage_table(stats["beta"].values, chains)
    # the estimate after each chain's last stage (beta = 1)
    per_chain = np.array([row[np.isfinite(row)][-1] for row in log_evidence_path])
    log_evidence = float(np.logaddexp.reduce(per_chain) - np.log(chains))
    draws_by_name = _posterior_arrays(model, idata.posterior)
    converged, diagnostics = check_mixing(draws_by_name, "smc", model=model)
    n_stages = int(np.sum(np.isfinite(beta_path), axis=1).max())
    sampling = stats.attrs.get("_t_sampling")
    return RawResult(
        draws=draws_by_name,
        record=FitRecord(
            converged=converged,
            n_iter=n_stages,
            point_estimate=False,
            objective=log_evidence,
            objective_name="log-evidence",
            objective_spread=float(np.ptp(per_chain)) if chains > 1 else float("nan"),
            run_s=float(sampling) if sampling is not None else float("nan"),
        ),
        history={"log_marginal_likelihood": log_evidence_path, "beta": beta_path},
        attrs={
            "draws": draws,
            "chains": chains,
            "kernel": kernel,
            "threshold": threshold,
            "correlation_threshold": correlation_threshold,
            "chain_log_evidence": repr(np.round(per_chain, 4).tolist()),
            **diagnostics,
        },
    )
