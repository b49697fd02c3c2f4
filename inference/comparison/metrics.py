"""The numbers of a comparison: one tidy table per back-end and parameter element, and PSIS-LOO.

:func:`comparison_table` summarises each result (mean, sd, HDI, ESS, R-hat) and measures it
against the reference's draws (error in reference sd, sd ratio, 1-Wasserstein distance);
:func:`loo_table` ranks the results with draws by PSIS-LOO. Both read finished result
DataTrees and fit nothing.
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np

from ..core import FitRecord
from ..registry import BACKENDS
from .reference import REFERENCE_NUTS

__all__ = ["COLUMN_DOCS", "HDI_PROB", "TABLE_COLUMNS", "backend_kind", "comparison_table", "coordinate_names",
           "loo_table"]

#: columns of :attr:`~latentzoo.inference.comparison.compare.Comparison.table`, in order (meanings in :data:`COLUMN_DOCS`)
TABLE_COLUMNS = (
    "backend",
    "parameter",
    "kind",
    "mean",
    "sd",
    "hdi_3%",
    "hdi_97%",
    "ref_mean",
    "ref_sd",
    "error_in_ref_sd",
    "sd_ratio",
    "wasserstein",
    "ess_bulk",
    "ess_tail",
    "ess_bulk_per_s",
    "r_hat",
    "divergences",
    "objective",
    "objective_name",
    "objective_spread",
    "n_iter",
    "converged",
    "compile_s",
    "run_s",
    "runtime_s",
    "reference",
)

#: what each column of the table means (shown in the report)
COLUMN_DOCS = {
    "backend": "back-end name (nuts_reference: the long, cached NUTS run used as the reference)",
    "parameter": "parameter element or derived quantity",
    "kind": "exact, sampler (MCMC), variational or point (EM, MAP)",
    "mean": "posterior mean (point estimates: the estimate)",
    "sd": "posterior standard deviation (empty for point estimates)",
    "hdi_3%": "lower end of the 94% highest-density interval",
    "hdi_97%": "upper end of the 94% highest-density interval",
    "ref_mean": "the reference's posterior mean",
    "ref_sd": "the reference's posterior sd",
    "error_in_ref_sd": "(mean - ref_mean) / ref_sd",
    "sd_ratio": "sd / ref_sd: below 1 over-confident (mean-field VI), above 1 too wide",
    "wasserstein": "1-Wasserstein distance of this marginal to the reference draws, in the parameter's units; "
    "for a point estimate the distance of a point mass, i.e. the mean absolute deviation of the reference "
    "draws from the estimate (never below the reference's own spread)",
    "ess_bulk": "bulk effective sample size (MCMC and exact draws)",
    "ess_tail": "tail effective sample size (5% and 95% quantiles)",
    "ess_bulk_per_s": "bulk ESS per second of sampling (compilation excluded; MCMC only)",
    "r_hat": "rank-normalised split R-hat (MCMC with several chains); above 1.01: chains disagree",
    "divergences": "divergent transitions (NUTS)",
    "objective": "final objective: EM log-posterior (log-likelihood with mle=True), MAP log-posterior, "
    "VB/ADVI ELBO, exact log-evidence; per back-end, not comparable across kinds",
    "objective_name": "what objective is",
    "objective_spread": "spread of the final objective over restarts (EM, VB): > 0 means several stationary points",
    "n_iter": "iterations (EM/VB updates, ADVI steps, MCMC tune + draws)",
    "converged": "the back-end's own convergence criterion (MCMC: R-hat and divergences)",
    "compile_s": "seconds of model building, compilation and conversion (PyMC back-ends only)",
    "run_s": "seconds of sampling or optimisation proper",
    "runtime_s": "wall time of the whole fit",
    "reference": "which reference the ref_* columns use",
}

HDI_PROB = 0.94
#: the quantiles whose indicators define the tail ESS (Vehtari et al. 2021); passed to ArviZ
#: explicitly, since its default is its ``stats.ci_prob`` setting (0.89: the 11% and 89% quantiles)
TAIL_ESS_PROBS = (0.05, 0.95)


# -- the table ---------------------------------------------------------------------------------
def _element_labels(name: str, shape: tuple[int, ...], names: tuple | None = None):
    """``("p", ())`` for a scalar; ``("means[1, 0]", (1, 0))`` ... for array elements.

    ``names`` holds, per dimension, the names of its positions (``("eruptions", "waiting")``) or
    None; a named position is labelled by its name (``means[1, waiting]``)."""
    if not shape:
        yield name, ()
        return
    names = names or (None,) * len(shape)
    for index in itertools.product(*(range(n) for n in shape)):
        parts = (str(i) if labels is None else labels[i] for i, labels in zip(index, names))
        yield f"{name}[{', '.join(parts)}]", index


def coordinate_names(variable) -> tuple:
    """Per dimension of a posterior variable (after ``chain`` and ``draw``), the names of its
    positions where its coordinate holds text (a DataFrame's columns as ``feature``), else None.

    Names that would make a table label ambiguous (holding ``,``, ``[`` or ``]``, or repeated)
    are not used."""
    result = []
    for dim in variable.dims[2:]:
        values = variable.coords[dim].values if dim in variable.coords else None
        labels = None
        if values is not None and values.dtype.kind in "OUS":
            labels = tuple(str(value) for value in values)
            if len(set(labels)) != len(labels) or any(c in label for label in labels for c in ",[]"):
                labels = None
        result.append(labels)
    return tuple(result)


def backend_kind(name: str) -> str:
    """The kind of a back-end (``point``, ``variational``, ``sampler``, ``exact``)."""
    if name in BACKENDS:
        return BACKENDS[name].kind
    return "sampler" if name == REFERENCE_NUTS else "unknown"


def _variable_stats(idata, names: list[str], kind: str, tail_ess: bool = True) -> dict[str, dict]:
    """mean, sd, HDI, ESS (tail ESS only with ``tail_ess``), R-hat arrays per variable (each of the
    variable's shape)."""
    # ArviZ's array functions, the ones az.hdi / az.ess / az.rhat apply to each variable of a
    # Dataset: the same numbers without xarray's apply_ufunc per variable and statistic, which
    # cost more than the statistics on the draws of a short run (the live page's tables)
    from arviz_stats.base import array_stats

    posterior = idata.posterior
    n_chain, n_draw = posterior.sizes["chain"], posterior.sizes["draw"]
    point = n_chain * n_draw == 1
    stats = {name: {"mean": posterior[name].mean(("chain", "draw")).values} for name in names}
    if point:
        return stats
    # ESS measures autocorrelation; draws from q (VB, ADVI) are independent by construction
    mcmc_like = kind in ("sampler", "exact") and n_draw >= 4
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        # ArviZ warns about short chains, and divides 0 by 0 for entries fixed by the model
        # (masked HMM emissions); the numbers are still the right ones to show
        warnings.simplefilter("ignore")
        for name in names:
            values = np.asarray(posterior[name].transpose("chain", "draw", ...).values)
            hdi = array_stats.hdi(np.moveaxis(values, (0, 1), (-2, -1)), HDI_PROB, axis=(-2, -1))
            stats[name]["sd"] = posterior[name].std(("chain", "draw"), ddof=1).values
            stats[name]["hdi_3%"], stats[name]["hdi_97%"] = hdi[..., 0], hdi[..., 1]
            if mcmc_like:
                stats[name]["ess_bulk"] = array_stats.ess(values, chain_axis=0, draw_axis=1, method="bulk")
                if tail_ess:
                    stats[name]["ess_tail"] = array_stats.ess(values, chain_axis=0, draw_axis=1, method="tail",
                                                              prob=TAIL_ESS_PROBS)
            if kind == "sampler" and n_chain > 1:
                stats[name]["r_hat"] = array_stats.rhat(values, chain_axis=0, draw_axis=1)
    return stats


def _flat_draws(idata, name: str) -> np.ndarray:
    """Draws of ``name`` as (n_samples, *shape)."""
    values = np.asarray(idata.posterior[name].values, float)
    return values.reshape((-1,) + values.shape[2:])


def _wasserstein(draws: np.ndarray, reference: np.ndarray) -> float:
    """1-Wasserstein distance between two samples of one marginal (a point mass for one draw)."""
    from scipy.stats import wasserstein_distance

    draws, reference = draws[np.isfinite(draws)], reference[np.isfinite(reference)]
    if not draws.size or not reference.size:
        return math.nan
    return float(wasserstein_distance(draws, reference))


def _record(idata) -> FitRecord:
    """The typed fit record every back-end leaves in the posterior's attrs."""
    return FitRecord.from_attrs(idata.posterior.attrs)


def comparison_table(model, idatas: dict, reference: str | None = None, reference_label: str | None = None,
                     tail_ess: bool = True):
    """The tidy comparison table.

    Parameters
    ----------
    model : latentzoo model
    idatas : dict of str -> xarray.DataTree
        Back-end name -> result (already relabelled where needed).
    reference : str, optional
        Back-end whose draws are the yardstick (``ref_mean``, ``ref_sd``, ``sd_ratio``,
        ``wasserstein``).
    reference_label : str, optional
        What the ``reference`` column says (default: the reference's name).
    tail_ess : bool
        Compute ``ess_tail`` (NaN otherwise): about a quarter of the table's time on short
        runs, for a caller that does not show it (``latentzoo explore``).

    Returns
    -------
    pandas.DataFrame
        One row per (back-end, element of each parameter and derived quantity), columns
        :data:`TABLE_COLUMNS` (described in :data:`COLUMN_DOCS`). Per-observation latent
        posteriors are left out.
    """
    import pandas as pd

    names = list(model.param_names) + list(model.derived_dims())
    per_backend = {}
    for backend, idata in idatas.items():
        kind = backend_kind(backend)
        per_backend[backend] = (kind, _variable_stats(idata, names, kind, tail_ess))
    reference_stats = per_backend[reference][1] if reference in per_backend else None
    reference_draws = {name: _flat_draws(idatas[reference], name) for name in names} if reference_stats else {}
    reference_label = reference_label or (reference if reference_stats else "none")
    rows = []
    for backend, idata in idatas.items():
        kind, stats = per_backend[backend]
        diverging = idata.sample_stats.get("diverging") if "sample_stats" in idata.children else None
        divergences = float(np.sum(diverging.values)) if diverging is not None else math.nan
        record = _record(idata)
        run_s = record.run_s
        common = {
            "backend": backend,
            "kind": kind,
            "divergences": divergences,
            "objective": record.objective,
            "objective_name": record.objective_name,
            "objective_spread": record.objective_spread,
            "n_iter": record.n_iter,
            "converged": record.converged,
            "compile_s": record.compile_s,
            "run_s": run_s,
            "runtime_s": record.runtime_s,
            "reference": reference_label,
        }
        for name in names:
            values = stats[name]
            draws = _flat_draws(idata, name) if reference_stats is not None else None
            labels = coordinate_names(idata.posterior[name])
            for label, index in _element_labels(name, np.shape(values["mean"]), labels):
                row = dict(common, parameter=label)
                for column in ("mean", "sd", "hdi_3%", "hdi_97%", "ess_bulk", "ess_tail", "r_hat"):
                    row[column] = float(values[column][index]) if column in values else math.nan
                row["ref_mean"] = row["ref_sd"] = row["wasserstein"] = math.nan
                if reference_stats is not None:
                    row["ref_mean"] = float(reference_stats[name]["mean"][index])
                    reference_sd = reference_stats[name].get("sd")
                    row["ref_sd"] = float(reference_sd[index]) if reference_sd is not None else math.nan
                    sample = reference_draws[name][(slice(None),) + index]
                    row["wasserstein"] = _wasserstein(draws[(slice(None),) + index], sample)
                positive = row["ref_sd"] > 0
                row["error_in_ref_sd"] = (row["mean"] - row["ref_mean"]) / row["ref_sd"] if positive else math.nan
                row["sd_ratio"] = row["sd"] / row["ref_sd"] if positive else math.nan
                row["ess_bulk_per_s"] = (
                    row["ess_bulk"] / run_s if kind == "sampler" and run_s > 0 else math.nan
                )
                rows.append(row)
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    # typed even when empty (every back-end failed), so that the summary's arithmetic works on it
    text = ("backend", "parameter", "kind", "objective_name", "reference")
    types = {column: object if column in text else float for column in TABLE_COLUMNS}
    return table.astype({**types, "n_iter": "Int64", "converged": bool})


# -- LOO ----------------------------------------------------------------------------------------
def _loaded_for_loo(idata):
    """A lazy result (``per_observation="lazy"``) as ArviZ's LOO needs it: the pointwise
    log-likelihood computed (PSIS reads every value anyway), lazy posterior variables (latent
    posteriors, which LOO does not use) left out rather than computed."""
    if idata.attrs.get("per_observation") != "lazy":
        return idata
    result = idata.copy(deep=False)
    result["log_likelihood"] = idata.log_likelihood.to_dataset().load()
    posterior = idata.posterior.to_dataset()
    result["posterior"] = posterior.drop_vars([name for name, v in posterior.data_vars.items() if v.chunks is not None])
    return result


def loo_table(idatas: dict):
    """PSIS-LOO of every result with more than one draw, ranked as by :func:`arviz.compare`.

    Parameters
    ----------
    idatas : dict of str -> xarray.DataTree (each with a ``log_likelihood`` group)

    Returns
    -------
    table : pandas.DataFrame or None
        Index: back-end; columns ``rank``, ``elpd_loo``, ``p_loo``, ``elpd_diff``, ``se``,
        ``dse``, ``warning`` (ArviZ's flag) and ``n_bad_k`` (observations whose Pareto k is above
        ArviZ's threshold ``min(1 - 1/log10(S), 0.7)`` for S draws, where the LOO estimate is
        unreliable). None when LOO does not apply.
    note : str
        Why LOO was left out, what was skipped, or what failed (empty if nothing to say).
    """
    import arviz as az
    import pandas as pd

    usable, skipped, invalid, summarised = {}, [], [], []
    for name, idata in idatas.items():
        n_samples = idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"]
        if idata.attrs.get("per_observation") == "summary" and n_samples >= 2:
            summarised.append(name)
        elif "log_likelihood" not in idata.children or n_samples < 2:
            skipped.append(name)
        elif not all(np.isfinite(v.values).all() for v in idata.log_likelihood.data_vars.values()):
            invalid.append(name)  # a NaN would make every elpd NaN without an error
        else:
            usable[name] = _loaded_for_loo(idata)
    note = f"left out (point estimates, no draws to average over): {', '.join(skipped)}." if skipped else ""
    if invalid:
        note += f" Left out for a non-finite pointwise log-likelihood: {', '.join(invalid)}."
    if summarised:
        note += (f" Left out: {', '.join(summarised)} kept only totals of the pointwise log-likelihood "
                 "(per_observation='summary'); LOO needs the pointwise values: fit with "
                 "per_observation='lazy' (computed on access) or 'full'.")
    note = note.strip()
    if not usable:
        if summarised:
            return None, note
        return None, "LOO needs posterior draws; no back-end has more than one. " + note
    first = next(iter(usable.values()))
    n_obs = int(np.prod([size for dim, size in first.log_likelihood.sizes.items() if dim not in ("chain", "draw")]))
    if n_obs < 2:
        return None, f"LOO needs at least two observations; the pointwise log-likelihood has {n_obs}."
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            single = {name: az.loo(idata, pointwise=True) for name, idata in usable.items()}
            # az.compare accepts the computed LOOs: PSIS once per back-end, not twice
            ranked = az.compare(single, round_to="none") if len(single) > 1 else None
    except Exception as error:  # LOO is an extra: report why, keep the comparison
        return None, f"LOO failed: {type(error).__name__}: {error}. " + note
    if ranked is None:
        name = next(iter(single))
        ranked = pd.DataFrame({"rank": [0], "elpd_diff": [0.0], "dse": [0.0]}, index=[name])
    ranked = ranked[["rank", "elpd_diff", "dse"]].copy()
    ranked.insert(1, "elpd_loo", [float(single[name].elpd) for name in ranked.index])
    ranked.insert(2, "p_loo", [float(single[name].p) for name in ranked.index])
    ranked.insert(4, "se", [float(single[name].se) for name in ranked.index])
    ranked["warning"] = [bool(single[name].warning) for name in ranked.index]
    # ArviZ 1's threshold for a reliable PSIS estimate depends on the number of draws
    # (min(1 - 1/log10(S), 0.7), Vehtari et al. 2024)
    ranked["n_bad_k"] = [
        int(np.sum(np.asarray(single[name].pareto_k) > single[name].good_k)) for name in ranked.index
    ]
    ranked.index.name = "backend"
    return ranked, note
