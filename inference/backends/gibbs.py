"""``gibbs``: hand-written blocked conjugate Gibbs sampling.

Each sweep draws the latent variables given the parameters (``model.sample_stats`` returns the
complete-data sufficient statistics) and then every parameter block from its conjugate
posterior given those statistics (``model.conditional_posterior(stats).sample``). Chains get
independent child generators of the run's generator, so a seed fixes every chain.
"""

from __future__ import annotations

import numpy as np

from ...models.core.conjugate import apply_to_factors
from ...models.core.protocols import ConjugateSweep
from ..core import FitRecord, RawResult
from ..diagnostics import check_mixing
from ..options import check_bool, check_int
from ..progress import progress_bar
from ..registry import register

__all__ = ["run"]


@register(
    "gibbs",
    requires=(ConjugateSweep,),
    kind="sampler",
    description="hand-written blocked conjugate Gibbs sampler",
)
def run(
    model,
    data,
    *,
    rng,
    draws: int = 1000,
    tune: int = 500,
    chains: int = 4,
    init="random",
    progressbar: bool = True,
) -> RawResult:
    """Run ``chains`` Gibbs chains of ``tune`` burn-in and ``draws`` kept sweeps.

    Parameters
    ----------
    draws, tune, chains : int
    init : str or dict
        Starting parameters: a strategy name or a dict (the same for every chain).
    progressbar : bool

    Returns
    -------
    RawResult with draws of shape (chains, draws, ...).
    """
    from .em import resolve_init

    draws = check_int(draws, "draws")
    tune = check_int(tune, "tune", minimum=0)
    chains = check_int(chains, "chains")
    progressbar = check_bool(progressbar, "progressbar")
    start_at = resolve_init(model, data, init, rng, 1)
    names = model.param_names
    samples = {name: [] for name in names}
    with progress_bar("Gibbs", chains * (tune + draws), progressbar) as progress:
        for chain_rng in rng.spawn(chains):
            params = start_at(chain_rng)
            kept = {name: [] for name in names}
            for sweep in range(tune + draws):
                stats = model.sample_stats(data, params, chain_rng)
                posterior = model.conditional_posterior(stats)
                params = apply_to_factors(posterior, "sample", chain_rng)
                if sweep >= tune:
                    for name in names:
                        kept[name].append(params[name])
                progress.advance()
            for name in names:
                samples[name].append(np.stack(kept[name]))
    draws_by_name = {name: np.stack(chain_draws) for name, chain_draws in samples.items()}
    converged, diagnostics = check_mixing(draws_by_name, "gibbs", model=model)
    return RawResult(
        draws=draws_by_name,
        record=FitRecord(converged=converged, n_iter=tune + draws, point_estimate=False),
        attrs={
            **diagnostics,
            "draws": draws,
            "tune": tune,
            "chains": chains,
        },
    )
