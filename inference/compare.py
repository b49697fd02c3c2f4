"""Run several back-ends on one model and data set and put the results side by side.

:func:`compare` fits every requested back-end with :func:`~latentzoo.inference.fit`, keeps going
when one of them fails (the failure is part of the answer), relabels exchangeable labels to the
reference back-end, and returns a :class:`Comparison` holding the result DataTrees, one
tidy table, figures and a self-contained HTML report.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .core import ConvergenceWarning, FitRecord
from .labels import reference_from, relabel, relabel_by_model, relabel_self
from .reference import REFERENCE_NUTS, reference_nuts
from .registry import BACKENDS, applicable_backends, fit, get_backend

__all__ = ["Comparison", "compare", "comparison_table", "loo_table", "resolve_backends", "summarize", "TABLE_COLUMNS", "COLUMN_DOCS"]

#: columns of :attr:`Comparison.table`, in order (meanings in :data:`COLUMN_DOCS`)
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

# Warnings that concern the caller's environment rather than this fit are passed on, not recorded.
_PASSED_ON = (DeprecationWarning, PendingDeprecationWarning, FutureWarning, ImportWarning)


@dataclass
class Comparison:
    """The results of :func:`compare`.

    Attributes
    ----------
    model : the latentzoo model
    data : the validated data (``model.check_data(data)``)
    idatas : dict of str -> xarray.DataTree
        One per back-end that ran (and the long NUTS reference, under ``"nuts_reference"``,
        when it is the yardstick), relabelled to the reference where the model has a
        ``label_dim``. Back-ends that failed are absent (see ``failures``).
    reference : str or None
        The result whose posterior is the yardstick (``ref_mean``, ``ref_sd``), or None.
    failures : dict of str -> str
        ``"ExceptionType: message"`` per back-end that raised.
    warnings : dict of str -> list of str
        Warnings raised while fitting (convergence warnings and the like), per back-end.
    table : pandas.DataFrame
        One row per (back-end, parameter element), columns :data:`TABLE_COLUMNS`.
    backends : list of str
        The back-ends requested (and the reference), in the order they were run.
    options : dict of str -> dict
        Options passed to each back-end.
    random_seed : int or None
    reference_info : str
        What the reference is and where it came from (exact draws, a cached NUTS run, ...).
    loo : pandas.DataFrame or None
        PSIS-LOO per back-end with draws (:func:`loo_table`), or None.
    loo_note : str
        Why LOO is missing or partial, or why it failed.
    """

    model: object
    data: object
    idatas: dict
    reference: str | None
    failures: dict
    warnings: dict
    table: object
    backends: list = field(default_factory=list)
    options: dict = field(default_factory=dict)
    random_seed: int | None = None
    reference_info: str = ""
    loo: object = None
    loo_note: str = ""

    # -- views -------------------------------------------------------------------------------
    def plot(self) -> dict:
        """Figures of this comparison.

        Returns
        -------
        dict of str -> matplotlib.figure.Figure
            ``"forest"`` (means and 94% HDIs per back-end), ``"densities"`` (marginal
            densities overlaid), ``"history"`` (convergence of the iterative back-ends on one
            axis), ``"traces-<sampler>"`` (MCMC chains, one figure per sampler) and ``"model"``
            (a model-specific picture), where each applies.
        """
        from . import plots

        figures = {
            "forest": plots.forest(self),
            "densities": plots.densities(self),
            "history": plots.history(self),
            **plots.traces(self),
            "model": plots.model_picture(self),
        }
        return {name: figure for name, figure in figures.items() if figure is not None}

    def summary(self) -> str:
        """A short plain-language paragraph: what ran, against which reference, who agrees and
        who fails how (see :func:`summarize`)."""
        model_name = type(self.model).__name__
        n_obs = self.model.n_observations(self.data)
        ran = [name for name in self.backends if name in self.idatas]
        unit = getattr(self.model, "observation_dim", "observation")
        opening = (f"{len(ran)} of {len(self.backends)} back-ends fitted {model_name} to {n_obs} "
                   f"{unit}{'' if n_obs == 1 else 's'}")
        if self.reference and self.reference not in self.failures:
            opening += f" (reference: {self.reference_info or self.reference})."
        elif not self.reference:
            opening += " (no reference)."
        else:
            opening += "."
        parts = [opening, summarize(self.table, self.reference, self.failures, self.loo)]
        if len(self.table) and self.reference in self.idatas:
            parts.append(self._identification_note())
        n_warned = sum(bool(messages) for messages in self.warnings.values())
        if n_warned:
            parts.append(f"{n_warned} back-end(s) raised warnings (see the report).")
        return " ".join(part for part in parts if part)

    def _identification_note(self) -> str:
        """Which reported quantities the data pin down best, by reference sd relative to prior sd.

        The prior sd is unknown in general, so the comparison is between quantities: the one with
        the smallest reference sd and the one with the largest (a ridge shows up as a factor of
        several between them, e.g. ``heads_prob`` against ``p`` and ``q``).
        """
        reference = self.table[self.table["backend"] == self.reference].dropna(subset=["sd"])
        # entries fixed by the model's structure (masked emissions) have sd 0 and say nothing
        reference = reference[reference["sd"] > 0]
        if len(reference) < 2:
            return ""
        tight = reference.loc[reference["sd"].idxmin()]
        loose = reference.loc[reference["sd"].idxmax()]
        if loose["sd"] < 2 * tight["sd"]:
            return ""
        return (
            f"The data determine {tight['parameter']} (reference sd {tight['sd']:.2g}) more precisely than "
            f"{loose['parameter']} (sd {loose['sd']:.2g}), so point estimates of {loose['parameter']} are "
            "the least trustworthy."
        )

    # -- output ------------------------------------------------------------------------------
    def save(self, directory) -> Path:
        """Write the comparison to ``directory`` (created if needed).

        Files: ``<backend>.nc`` per back-end (``xarray.open_datatree`` or ``arviz.from_netcdf``
        reads them back, with the ``fit_history`` group and attrs), ``table.csv``, ``loo.csv`` (where LOO applies),
        ``summary.txt``, ``<figure>.png`` per figure, and a self-contained ``report.html``
        (tables inline, figures embedded as base64 PNG, no external resources).

        Parameters
        ----------
        directory : str or os.PathLike

        Returns
        -------
        pathlib.Path
            The path of ``report.html``.
        """
        directory = Path(directory)
        if directory.exists() and not directory.is_dir():
            raise ValueError(f"directory {str(directory)!r} exists and is not a directory")
        directory.mkdir(parents=True, exist_ok=True)
        for name, idata in self.idatas.items():
            # uncompressed (the default): zlib took 2-3 s for a GMM run's per-point latent draws
            idata.to_netcdf(directory / f"{name}.nc")
        self.table.to_csv(directory / "table.csv", index=False)
        if self.loo is not None:
            self.loo.to_csv(directory / "loo.csv")
        (directory / "summary.txt").write_text(self.summary() + "\n", encoding="utf-8")
        images = {}
        for name, figure in self.plot().items():
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=100)
            (directory / f"{name}.png").write_bytes(buffer.getvalue())
            images[name] = base64.b64encode(buffer.getvalue()).decode("ascii")
        report = directory / "report.html"
        report.write_text(self._html(images), encoding="utf-8")
        return report

    def _settings(self) -> dict:
        from importlib.metadata import PackageNotFoundError, version

        def installed(package):
            try:
                return version(package)
            except PackageNotFoundError:
                return "?"

        observed = self.model.observed_data(self.data)
        shapes = ", ".join(f"{name} {np.shape(array)} {dims}" for name, (array, dims) in observed.items())
        # small data sets are shown in full, so that the report alone says what was fitted
        values = "; ".join(
            f"{name} = " + np.array2string(np.asarray(array), separator="", threshold=200, max_line_width=120)
            for name, (array, _) in observed.items()
        )
        return {
            "model": repr(self.model),
            "observations": f"{self.model.n_observations(self.data)}: {shapes}",
            "data": values,
            "back-ends": ", ".join(self.backends),
            "reference": f"{self.reference}: {self.reference_info}" if self.reference else "none",
            "random_seed": str(self.random_seed),
            "options": "; ".join(f"{name}: {opts}" for name, opts in self.options.items() if opts) or "defaults",
            "versions": ", ".join(f"{p} {installed(p)}" for p in ("latentzoo", "pymc", "pytensor", "arviz", "numpy")),
            "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        }

    def _html(self, images: dict) -> str:
        escape = html.escape

        def number(value):
            return f"{value:.4g}"

        title = f"latentzoo: {type(self.model).__name__} — comparison of back-ends"
        table_html = self.table.to_html(index=False, float_format=number, na_rep="–", border=0, classes="table")
        if self.loo is not None:
            loo_html = self.loo.to_html(float_format=number, na_rep="–", border=0, classes="table")
            loo_html += f"<p>{escape(self.loo_note)}</p>" if self.loo_note else ""
        else:
            loo_html = f"<p>{escape(self.loo_note or 'not computed')}</p>"
        columns = "".join(f"<dt><code>{escape(k)}</code></dt><dd>{escape(v)}</dd>" for k, v in COLUMN_DOCS.items())
        settings = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in self._settings().items())
        failures = "".join(f"<li><b>{escape(k)}</b>: {escape(v)}</li>" for k, v in self.failures.items())
        failures = failures or "<li>none</li>"
        warning_items = "".join(
            f"<li><b>{escape(k)}</b>: {escape(message.removeprefix(f'{k}: '))}</li>"
            for k, messages in self.warnings.items()
            for message in messages
        ) or "<li>none</li>"
        captions = {
            "forest": "Posterior mean and 94% HDI per back-end (point estimates: diamonds only). "
            "The shaded band is the reference's interval.",
            "densities": "Marginal posterior densities per back-end, overlaid (point estimates: vertical lines).",
            "history": "Convergence: each iterative back-end's objective per iteration, divided by the number "
            "of observations so that they share an axis (EM: log-posterior, VB and ADVI: ELBO).",
            "traces": "MCMC traces and per-chain densities (arviz-plots), one colour per chain: well-mixed chains "
            "overlap like noise around one level, and their densities agree.",
            "model": "The model's own picture.",
        }
        figures = "".join(
            f"<figure id='figure-{escape(name)}'><img alt='{escape(name)}' src='data:image/png;base64,{data}'/>"
            f"<figcaption>{escape(captions.get(name.partition('-')[0], name))}</figcaption></figure>"
            for name, data in images.items()
        )
        return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.8em; }}
th, td {{ padding: 0.25em 0.5em; border-bottom: 1px solid #ddd; text-align: right; }}
th {{ background: #f4f4f4; }}
.scroll {{ overflow-x: auto; }}
.settings th, .settings td {{ text-align: left; }}
figure {{ margin: 1.5em 0; }} img {{ max-width: 100%; }}
figcaption {{ color: #555; font-size: 0.9em; }}
dt {{ float: left; clear: left; width: 11em; }} dd {{ margin-left: 12em; font-size: 0.9em; }}
.summary {{ background: #f6f8fa; padding: 0.8em 1em; border-left: 4px solid #4a7; }}
</style></head><body>
<h1>{escape(title)}</h1>
<p class="summary">{escape(self.summary())}</p>
<p>Reference: <b>{escape(str(self.reference))}</b> — {escape(self.reference_info or "none")}</p>
<h2>Figures</h2>{figures}
<h2>Table</h2>
<div class="scroll">{table_html}</div>
<details><summary>What the columns mean</summary><dl>{columns}</dl></details>
<h2>Leave-one-out cross-validation (PSIS-LOO)</h2>
<div class="scroll">{loo_html}</div>
<h2>Failures</h2><ul>{failures}</ul>
<h2>Warnings</h2><ul>{warning_items}</ul>
<h2>Settings</h2><table class="settings">{settings}</table>
<p>Each back-end's result (an <code>xarray.DataTree</code>) is saved next to this file as <code>&lt;backend&gt;.nc</code>
(<code>xarray.open_datatree</code> or <code>arviz.from_netcdf</code>); the table as <code>table.csv</code>.</p>
</body></html>
"""


# -- the table ---------------------------------------------------------------------------------
def _element_labels(name: str, shape: tuple[int, ...]):
    """``("p", ())`` for a scalar; ``("means[1, 0]", (1, 0))`` ... for array elements."""
    if not shape:
        yield name, ()
        return
    for index in itertools.product(*(range(n) for n in shape)):
        yield f"{name}[{', '.join(str(i) for i in index)}]", index


def backend_kind(name: str) -> str:
    """The kind of a back-end (``point``, ``variational``, ``sampler``, ``exact``)."""
    if name in BACKENDS:
        return BACKENDS[name].kind
    return "sampler" if name == REFERENCE_NUTS else "unknown"


def _variable_stats(idata, names: list[str], kind: str) -> dict[str, dict]:
    """mean, sd, HDI, ESS, R-hat arrays per variable (each of the variable's shape)."""
    import arviz as az

    posterior = idata.posterior.to_dataset()[names]
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
        hdi = az.hdi(posterior, prob=HDI_PROB)
        ess = az.ess(posterior, method="bulk") if mcmc_like else None
        ess_tail = az.ess(posterior, method="tail") if mcmc_like else None
        rhat = az.rhat(posterior) if kind == "sampler" and n_chain > 1 else None
    for name in names:
        stats[name]["sd"] = posterior[name].std(("chain", "draw"), ddof=1).values
        stats[name]["hdi_3%"] = hdi[name].sel(ci_bound="lower").values
        stats[name]["hdi_97%"] = hdi[name].sel(ci_bound="upper").values
        if ess is not None:
            stats[name]["ess_bulk"] = ess[name].values
            stats[name]["ess_tail"] = ess_tail[name].values
        if rhat is not None:
            stats[name]["r_hat"] = rhat[name].values
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


def comparison_table(model, idatas: dict, reference: str | None = None, reference_label: str | None = None):
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
        per_backend[backend] = (kind, _variable_stats(idata, names, kind))
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
            for label, index in _element_labels(name, np.shape(values["mean"])):
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
    return table.astype({"n_iter": "Int64", "converged": bool})


# -- LOO ----------------------------------------------------------------------------------------
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

    usable, skipped, invalid = {}, [], []
    for name, idata in idatas.items():
        n_samples = idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"]
        if "log_likelihood" not in idata.children or n_samples < 2:
            skipped.append(name)
        elif not all(np.isfinite(v.values).all() for v in idata.log_likelihood.data_vars.values()):
            invalid.append(name)  # a NaN would make every elpd NaN without an error
        else:
            usable[name] = idata
    note = f"left out (point estimates, no draws to average over): {', '.join(skipped)}." if skipped else ""
    if invalid:
        note += f" Left out for a non-finite pointwise log-likelihood: {', '.join(invalid)}."
    note = note.strip()
    if not usable:
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


# -- the plain-language summary -------------------------------------------------------------------
#: thresholds of the generated summary
AGREE_SD = 0.5  # |mean error| within this many reference sd: "agrees"
FAR_SD = 2.0  # beyond this: "far off", worth an explanation
UNDER_DISPERSED = 0.8  # sd ratio below this on some parameter: "under-disperses"
OVER_DISPERSED = 1.25
LOW_ESS = 100  # bulk ESS below this: too few effective draws for stable means and intervals


def _join(names) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def summarize(table, reference: str | None = None, failures: dict | None = None, loo=None) -> str:
    """Plain-language findings built only from a comparison table (deterministic).

    Parameters
    ----------
    table : pandas.DataFrame with the columns of :data:`TABLE_COLUMNS`
    reference : str, optional
        The reference back-end's name in ``table["backend"]``.
    failures : dict of str -> str, optional
        Back-end -> ``"ExceptionType: message"``.
    loo : pandas.DataFrame, optional
        From :func:`loo_table`.

    Returns
    -------
    str
        Sentences: who agrees with the reference (|mean error| ≤ 0.5 reference sd on every
        parameter), who under-disperses (sd ratio < 0.8 on some parameter, typical of mean-field VI),
        point estimates far from the posterior mean, EM/VB restarts that ended at different
        stationary points, a point estimate with a lower objective than another (stuck at a
        worse stationary point), variational fits far off (a local optimum of the ELBO),
        sampler mixing (R-hat > 1.01, bulk ESS < 100, divergences), failures.
    """
    from .diagnostics import RHAT_LIMIT

    failures = failures or {}
    sentences = []
    has_reference = reference is not None and reference not in failures and reference in set(table["backend"])
    if reference is not None and reference in failures:
        sentences.append(f"The reference ({reference}) failed, so nothing is measured against it.")
    agree, under, over = [], [], []
    for backend in dict.fromkeys(table["backend"]):
        rows = table[table["backend"] == backend]
        kind = rows["kind"].iloc[0]
        error = rows["error_in_ref_sd"].abs()
        if has_reference and backend != reference and error.notna().any():
            worst = rows.loc[error.idxmax()]
            if error.max() <= AGREE_SD:
                agree.append(backend)
            elif error.max() > FAR_SD and kind == "point":
                sentences.append(
                    f"{backend}'s estimate of {worst['parameter']} lies {error.max():.1f} reference sd from the "
                    "posterior mean: a mode (or one point of a ridge) is not the mean."
                )
            elif error.max() > FAR_SD and kind == "variational":
                why = "a local optimum of the ELBO" if rows["converged"].all() else "it did not converge"
                sentences.append(
                    f"{backend} is {error.max():.1f} reference sd off on {worst['parameter']} ({why})."
                )
            elif error.max() > FAR_SD:
                sentences.append(f"{backend} is {error.max():.1f} reference sd off on {worst['parameter']}.")
            ratio = rows["sd_ratio"].dropna()
            if len(ratio) and kind != "point":
                low, high = rows.loc[ratio.idxmin()], rows.loc[ratio.idxmax()]
                if ratio.min() < UNDER_DISPERSED:
                    under.append(f"{backend} ({low['sd_ratio']:.2f} on {low['parameter']})")
                if ratio.max() > OVER_DISPERSED:
                    over.append(f"{backend} ({high['sd_ratio']:.2f} on {high['parameter']})")
        if kind == "sampler":
            problems = []
            rhat = rows["r_hat"].dropna()
            if len(rhat) and rhat.max() > RHAT_LIMIT:
                problems.append(f"R-hat up to {rhat.max():.3f} on {rows.loc[rhat.idxmax(), 'parameter']}")
            ess = rows["ess_bulk"].dropna()
            ess = ess[rows.loc[ess.index, "sd"] > 0]  # fixed entries have no meaningful ESS
            if len(ess) and ess.min() < LOW_ESS:
                problems.append(f"bulk ESS as low as {ess.min():.0f} ({rows.loc[ess.idxmin(), 'parameter']})")
            divergences = rows["divergences"].iloc[0]
            if np.isfinite(divergences) and divergences > 0:
                problems.append(f"{divergences:.0f} divergent transitions")
            if problems:
                sentences.append(f"{backend} mixes poorly: " + "; ".join(problems) + ".")
        spread = rows["objective_spread"].iloc[0]
        objective = rows["objective"].iloc[0]
        if np.isfinite(spread) and spread > 1e-6 * max(1.0, abs(objective)):
            sentences.append(
                f"{backend}'s restarts ended at {rows['objective_name'].iloc[0]} values up to {spread:.3g} apart: "
                "several stationary points (the best was kept)."
            )
    # point estimates maximise the same objective; a lower final value is a worse stationary point
    points = table[(table["kind"] == "point") & np.isfinite(table["objective"])].drop_duplicates("backend")
    for objective_name, group in points.groupby("objective_name", sort=False):
        best = group.loc[group["objective"].idxmax()]
        for _, row in group.iterrows():
            if best["objective"] - row["objective"] > 1e-4 * max(1.0, abs(best["objective"])):
                sentences.append(
                    f"{row['backend']} stopped at a stationary point with {objective_name} {row['objective']:.4g}, "
                    f"below {best['backend']}'s {best['objective']:.4g}."
                )
    if has_reference:
        if agree:
            sentences.insert(0, f"Agree with the reference ({reference}) within {AGREE_SD} reference sd on every "
                             f"parameter: {_join(agree)}.")
        elif len(set(table["backend"])) > 1:
            sentences.insert(0, f"No back-end agrees with the reference ({reference}) within {AGREE_SD} reference "
                             "sd on every parameter.")
    if under:
        sentences.append(f"Under-dispersed (sd ratio to the reference below {UNDER_DISPERSED}): {_join(under)}; "
                         "mean-field approximations ignore posterior correlations and are over-confident.")
    if over:
        sentences.append(f"Over-dispersed (sd ratio above {OVER_DISPERSED}): {_join(over)}.")
    not_converged = [
        name for name in dict.fromkeys(table["backend"]) if not table.loc[table["backend"] == name, "converged"].all()
    ]
    if not_converged:
        sentences.append("Not converged by their own criteria: " + _join(not_converged) + ".")
    for backend, message in failures.items():
        if backend != reference:
            sentences.append(f"{backend} failed ({message.split(':')[0]}).")
    if loo is not None and len(loo) > 1:
        bad = [f"{name} ({n})" for name, n in loo["n_bad_k"].items() if n > 0]
        sentence = f"Best predictive fit by PSIS-LOO: {loo.index[0]}"
        sentence += f"; unreliable LOO (Pareto k above ArviZ's threshold) for {_join(bad)}." if bad else "."
        sentences.append(sentence)
    return " ".join(sentences)


# -- compare ----------------------------------------------------------------------------------
def resolve_backends(model, backends, reference) -> tuple[list[str], str | None]:
    """The back-end names to run and the reference to compare them with.

    Parameters
    ----------
    model : a latentzoo model
    backends : str (comma-separated), sequence of str, or None (every applicable back-end)
    reference : str, "auto" or None

    Returns
    -------
    names : list of str
        Validated, applicable back-end names, the reference included.
    reference : str or None
    """
    valid = applicable_backends(model)
    if backends is None:
        names = list(valid)
    elif isinstance(backends, str):
        names = [part.strip() for part in backends.split(",") if part.strip()]
    else:
        try:
            names = list(backends)
        except TypeError:
            raise TypeError(f"backends must be a sequence of names or None, got {type(backends).__name__}") from None
    if not names:
        raise ValueError(f"backends must name at least one back-end; valid backends: {valid}")
    for name in names:
        if name != REFERENCE_NUTS:  # the long reference run, named when a caller passes names back in
            get_backend(model, name)
    if len(set(names)) != len(names):
        raise ValueError(f"backends lists a back-end twice: {names}")
    if isinstance(reference, str) and reference == "auto":
        reference = "exact" if "exact" in valid else REFERENCE_NUTS
    if reference is not None:
        if not isinstance(reference, str):
            raise TypeError(f"reference must be 'auto', a backend name or None, got {type(reference).__name__}")
        try:
            # the long reference run is NUTS with other settings
            get_backend(model, "nuts" if reference == REFERENCE_NUTS else reference)
        except ValueError as error:
            raise ValueError(f"reference: {error}") from None
        if reference not in names:
            names.insert(0, reference)
    return names, reference


def _check_options(options, names) -> dict[str, dict]:
    if options is None:
        return {}
    if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
        raise TypeError(f"options must be a dict of backend name -> dict of options, got {options!r}")
    unknown = set(options) - (set(names) - {REFERENCE_NUTS})
    if unknown:
        raise ValueError(f"options given for back-ends that are not compared: {sorted(unknown)}; compared: {names}")
    for name, value in options.items():
        # option *names* are checked here, so that a typo fails at once rather than as a failure
        # recorded after minutes of sampling; values are checked by the back-end itself
        unknown_options = set(value) - set(BACKENDS[name].options)
        if unknown_options:
            raise ValueError(
                f"unknown option(s) {sorted(unknown_options)} for backend {name!r}; "
                f"valid options: {list(BACKENDS[name].options)}"
            )
    return {name: dict(value) for name, value in options.items()}


def _run_one(model, data, backend, random_seed, options, progressbar, reference_options=None, cache=True):
    """Fit one back-end; returns (idata or None, failure or None, warning messages, reference info)."""
    if backend == REFERENCE_NUTS:
        options = {}
    else:
        spec = BACKENDS[backend]
        if "progressbar" in spec.options and "progressbar" not in options:
            options = {**options, "progressbar": progressbar}
    messages, info = [], None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if backend == REFERENCE_NUTS:
                idata, info = reference_nuts(model, data, random_seed=random_seed if random_seed is not None else 0,
                                             options=reference_options, cache=cache, progressbar=progressbar)
            else:
                idata = fit(model, data, backend=backend, random_seed=random_seed, **options)
            failure = None
        except Exception as error:  # a failing back-end is a result, not a crash
            idata, failure = None, f"{type(error).__name__}: {error}"
    for record in caught:
        if issubclass(record.category, _PASSED_ON):
            warnings.warn_explicit(record.message, record.category, record.filename, record.lineno)
            continue
        prefix = "" if issubclass(record.category, ConvergenceWarning) else f"{record.category.__name__}: "
        message = prefix + str(record.message)
        if message not in messages:
            messages.append(message)
    return idata, failure, messages, info


def _describe_reference(reference, idata, info) -> str:
    if reference is None:
        return ""
    if info is not None:
        return info["description"]
    if idata is None:
        return f"{reference} (failed)"
    size = idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"]
    if reference == "exact":
        return f"exact posterior, {size} independent draws"
    return f"the {reference} back-end's own run ({size} draws), not an exact posterior"


def compare(
    model,
    data,
    backends=None,
    reference="auto",
    random_seed: int | None = 0,
    options: dict | None = None,
    progressbar: bool = True,
    callback: Callable | None = None,
    reference_options: dict | None = None,
    cache=True,
) -> Comparison:
    """Fit ``model`` to ``data`` with several back-ends and compare them.

    Parameters
    ----------
    model : latentzoo model
    data : array-like
        Validated once by ``model.check_data``.
    backends : sequence of str, optional
        Back-end names; default every back-end that applies to the model
        (:func:`~latentzoo.inference.applicable_backends`).
    reference : {"auto", "nuts_reference"} or str or None, default "auto"
        The yardstick: ``"auto"`` is ``"exact"`` where it applies and otherwise
        ``"nuts_reference"``, a long NUTS run (4 chains x 2000 draws by default) cached on disk
        (:mod:`latentzoo.inference.reference`). A back-end name uses that back-end's own run.
        The reference is always run (added in front of ``backends`` if missing). None: no
        reference columns.
    random_seed : int or None, default 0
        Passed to every back-end, so the whole comparison is repeatable.
    options : dict of str -> dict, optional
        Per back-end options, e.g. ``{"nuts": {"chains": 2}, "em": {"n_init": 10}}``;
        validated by :func:`~latentzoo.inference.fit` (a bad one is recorded as that
        back-end's failure).
    progressbar : bool, default True
        Passed to back-ends that show progress, unless their ``options`` set it.
    callback : callable, optional
        ``callback(backend, event, detail)`` with event ``"start"``, ``"done"`` (detail: the
        runtime in seconds) or ``"failed"`` (detail: the message), e.g. for a status line.
    reference_options : dict, optional
        Settings of the long NUTS reference (``draws``, ``tune``, ``chains``,
        ``target_accept``, ...); see :data:`~latentzoo.inference.reference.DEFAULT_REFERENCE_OPTIONS`.
    cache : bool or path, default True
        Where the long NUTS reference is cached: True the default directory
        (``$LATENTZOO_CACHE/reference`` or ``~/.cache/latentzoo/reference``), a path that
        directory, False no cache (always run, never write).

    Returns
    -------
    Comparison

    Raises
    ------
    ValueError
        Unknown or inapplicable back-end names (the message lists the valid ones), duplicate
        names, or options for a back-end that is not compared. Errors *inside* a back-end do
        not raise: they are recorded in ``Comparison.failures``.

    Examples
    --------
    >>> from latentzoo.models import ThreeCoins
    >>> from latentzoo.inference import compare
    >>> result = compare(ThreeCoins(), "1111110000", backends=["em", "vb"])  # doctest: +SKIP
    >>> result.table[["backend", "parameter", "mean", "error_in_ref_sd"]]  # doctest: +SKIP
    """
    names, reference = resolve_backends(model, backends, reference)
    options = _check_options(options, names)
    if not isinstance(progressbar, bool):
        raise TypeError(f"progressbar must be True or False, got {type(progressbar).__name__}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
    data = model.check_data(data)
    # the reference runs first so that the others can be relabelled to it as they come
    order = ([reference] if reference else []) + [name for name in names if name != reference]
    idatas, failures, caught = {}, {}, {}
    reference_info = ""
    for backend in order:
        if callback is not None:
            callback(backend, "start", None)
        start = time.perf_counter()
        idata, failure, messages, info = _run_one(model, data, backend, random_seed, options.get(backend, {}),
                                                  progressbar, reference_options, cache)
        if backend == reference:
            reference_info = _describe_reference(reference, idata, info)
        caught[backend] = messages
        if failure is not None:
            failures[backend] = failure
        else:
            idatas[backend] = idata
        if callback is not None:
            callback(backend, "failed" if failure else "done", failure or time.perf_counter() - start)
    idatas = _relabelled(model, data, idatas, reference)
    idatas = {name: idatas[name] for name in names if name in idatas}
    loo, loo_note = loo_table(idatas)
    return Comparison(
        model=model,
        data=data,
        idatas=idatas,
        reference=reference,
        failures={name: failures[name] for name in names if name in failures},
        warnings={name: caught[name] for name in names},
        table=comparison_table(model, idatas, reference),
        backends=names,
        options=options,
        random_seed=random_seed,
        reference_info=reference_info,
        loo=loo,
        loo_note=loo_note,
    )


def _relabelled(model, data, idatas: dict, reference: str | None) -> dict:
    """Relabel every result to the reference's posterior means (or to the first result's)."""
    idatas = {name: relabel_by_model(model, data, idata) for name, idata in idatas.items()}
    label_dim = getattr(model, "label_dim", None)
    if label_dim is None or not idatas:
        return idatas
    anchor = reference if reference in idatas else next(iter(idatas))
    # models whose labels appear twice (HMM: trans_mat (state, state_next)) declare the pairing
    paired = getattr(model, "paired_label_dims", None)
    paired = paired() if callable(paired) else paired
    variables = [name for name, dims in {**model.param_dims(), **model.derived_dims()}.items() if label_dim in dims]
    # the reference's own draws may switch labels too; make them consistent before averaging
    anchored = relabel_self(idatas[anchor], label_dim, variables=variables, paired_dims=paired)
    target = reference_from(anchored, label_dim, variables=variables, paired_dims=paired)
    return {
        name: anchored if name == anchor else relabel(idata, target, label_dim, paired_dims=paired)
        for name, idata in idatas.items()
    }
