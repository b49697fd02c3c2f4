"""``gibbs``: hand-written blocked conjugate Gibbs sampling.

Each sweep draws the latent variables given the parameters (``model.sample_stats`` returns the
complete-data sufficient statistics) and then every parameter block from its conjugate
posterior given those statistics (``model.conditional_posterior(stats).sample``). Chains get
independent child generators of the run's generator, so a seed fixes every chain.

By default the chains start near the best of a few short MAP-EM runs (``em.em_start``: the
model's default initial strategy and prior draws, the best log posterior kept), each chain from
its own draw of the conditional posterior given the expected statistics there
(``em.jittered_start``). Chains started at random (``init="random"``) can settle in a poor local
mode, or in the mirror-image labelling of states that state-specific priors tell apart, and
never leave it: Gibbs moves labels one sweep at a time.
"""

from __future__ import annotations

import numpy as np

from ...models.core.conjugate import apply_to_factors
from ...models.core.protocols import BatchedSweep, ConjugateEStep, ConjugateSweep
from ..core import FitRecord, RawResult
from ..diagnostics import check_mixing as mixing_diagnostics
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
    init=None,
    n_init: int | None = None,
    progressbar: bool = True,
    check_mixing: bool = True,
) -> RawResult:
    """Run ``chains`` Gibbs chains of ``tune`` burn-in and ``draws`` kept sweeps.

    Parameters
    ----------
    draws, tune, chains : int
    init : str, dict or None
        None (default): every chain starts from its own draw near the best of ``n_init`` short
        MAP-EM runs (see the module doc). A strategy name (``"random"``, ``"prior"``, the
        model's own such as ``"kmeans++"``): each chain from its own such draw, without EM. A
        dict: that point for every chain.
    n_init : int, optional
        Number of short EM runs behind the default start (``em.START_RESTARTS``); only with
        ``init=None``.
    progressbar : bool
    check_mixing : bool
        Compute R-hat across chains (after the model's relabelling, as
        :func:`latentzoo.inference.diagnostics.check_mixing` does) and warn when the chains
        disagree. ``False`` is for a caller that computes the diagnostics itself, later or not
        at all (``latentzoo explore`` shows them with the table, after the plots): the draws
        are the same, ``attrs["max_rhat"]`` is NaN, ``attrs["mixing_checked"]`` is 0 (absent by default) and
        ``record.converged`` says only that the sweeps ran.

    Returns
    -------
    RawResult with draws of shape (chains, draws, ...).
    """
    from .em import START_RESTARTS, em_start, jittered_start, resolve_init

    draws = check_int(draws, "draws")
    tune = check_int(tune, "tune", minimum=0)
    chains = check_int(chains, "chains")
    progressbar = check_bool(progressbar, "progressbar")
    check_mixing = check_bool(check_mixing, "check_mixing")
    if n_init is not None and init is not None:
        raise ValueError("n_init sets the EM runs of the default start; it does not apply with init given")
    n_init = check_int(n_init, "n_init") if n_init is not None else START_RESTARTS
    from_em = init is None and isinstance(model, ConjugateEStep)
    start_at = None if from_em else resolve_init(model, data, init, rng, 1)
    chain_rngs = rng.spawn(chains)
    if from_em:
        best = em_start(model, data, rng.spawn(1)[0], n_init=n_init)
        start_at = lambda chain_rng: jittered_start(model, data, best, chain_rng)  # noqa: E731
    with progress_bar("Gibbs", chains * (tune + draws), progressbar) as progress:
        sweeps = _all_chains_at_once if isinstance(model, BatchedSweep) else _chain_by_chain
        draws_by_name = sweeps(model, data, start_at, chain_rngs, tune, draws, progress)
    if check_mixing:
        converged, diagnostics = mixing_diagnostics(draws_by_name, "gibbs", model=model)
    else:
        # the relabelling behind R-hat can cost as much as a short run's sweeps
        converged, diagnostics = True, {"divergences": 0, "max_rhat": float("nan")}
    return RawResult(
        draws=draws_by_name,
        record=FitRecord(converged=converged, n_iter=tune + draws, point_estimate=False),
        attrs={
            **diagnostics,
            **({} if check_mixing else {"mixing_checked": 0}),
            "draws": draws,
            "tune": tune,
            "chains": chains,
            "init": "em" if from_em else (init if isinstance(init, str) else "dict"),
        },
    )


def _chain_by_chain(model, data, start_at, chain_rngs, tune: int, draws: int, progress) -> dict:
    """The chains one after the other: draws {name: (chain, draw, ...)}."""
    names = model.param_names
    samples = {name: [] for name in names}
    for chain_rng in chain_rngs:
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
    return {name: np.stack(chain_draws) for name, chain_draws in samples.items()}


def _all_chains_at_once(model, data, start_at, chain_rngs, tune: int, draws: int, progress) -> dict:
    """Every chain's sweep in one call (:class:`BatchedSweep`), each chain drawing from its own
    generator in the order :func:`_chain_by_chain` does: the same draws, a fraction of the
    Python overhead."""
    names = model.param_names
    starts = [start_at(chain_rng) for chain_rng in chain_rngs]
    params = {name: np.stack([np.asarray(start[name], float) for start in starts]) for name in names}
    kept = {name: [] for name in names}
    for sweep in range(tune + draws):
        params = model.gibbs_sweep_chains(data, params, chain_rngs)
        if sweep >= tune:
            for name in names:
                kept[name].append(params[name])
        progress.advance(len(chain_rngs))
    return {name: np.stack(kept[name], axis=1) for name in names}
