"""``exact``: independent draws from the exact posterior, where the model can compute it."""

from __future__ import annotations

from ...models.core.protocols import ExactlySolvable
from ..core import FitRecord, RawResult
from ..options import check_int
from ..registry import register

__all__ = ["run"]


@register(
    "exact",
    requires=(ExactlySolvable,),
    kind="exact",
    description="exact posterior (conjugacy or enumeration of the latent variables), sampled exactly",
)
def run(model, data, *, rng, draws: int = 4000, chains: int = 1) -> RawResult:
    """Draw ``chains x draws`` independent samples from ``model.exact_posterior(data)``.

    The attrs carry the log marginal likelihood (``log_evidence``). The comparison's reference
    statistics come from these draws, like every other back-end's (after relabelling).
    """
    draws = check_int(draws, "draws")
    chains = check_int(chains, "chains")
    posterior = model.exact_posterior(data)
    samples = posterior.sample(rng, chains * draws)
    shaped = {name: value.reshape((chains, draws) + value.shape[1:]) for name, value in samples.items()}
    return RawResult(
        draws=shaped,
        record=FitRecord(
            converged=True,
            n_iter=0,
            point_estimate=False,
            objective=float(posterior.log_evidence),
            objective_name="log-evidence",
        ),
        attrs={"log_evidence": float(posterior.log_evidence)},
    )
