"""Run several back-ends on one model and data set and put the results side by side.

:func:`compare` fits every requested back-end with :func:`~latentzoo.inference.fit`, keeps going
when one of them fails (the failure is part of the answer), relabels exchangeable labels to the
reference back-end, and returns a :class:`Comparison` holding the InferenceData objects, one
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

from .core import ConvergenceWarning
from .labels import reference_from, relabel, relabel_by_model, relabel_self
from .registry import BACKENDS, applicable_backends, fit, get_backend

__all__ = ["Comparison", "compare", "comparison_table", "TABLE_COLUMNS"]

#: columns of :attr:`Comparison.table`, in order
TABLE_COLUMNS = (
    "backend",
    "parameter",
    "kind",
    "mean",
    "sd",
    "hdi_3%",
    "hdi_97%",
    "ess_bulk",
    "r_hat",
    "divergences",
    "runtime_s",
    "converged",
    "ref_mean",
    "ref_sd",
    "error_in_ref_sd",
    "n_iter",
)

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
    idatas : dict of str -> arviz.InferenceData
        One per back-end that ran, relabelled to the reference where the model has a
        ``label_dim``. Back-ends that failed are absent (see ``failures``).
    reference : str or None
        The back-end whose posterior is the yardstick (``ref_mean``, ``ref_sd``), or None.
    failures : dict of str -> str
        ``"ExceptionType: message"`` per back-end that raised.
    warnings : dict of str -> list of str
        Warnings raised while fitting (convergence warnings and the like), per back-end.
    table : pandas.DataFrame
        One row per (back-end, parameter element), columns :data:`TABLE_COLUMNS`.
    backends : list of str
        The back-ends requested, in the order they were run.
    options : dict of str -> dict
        Options passed to each back-end.
    random_seed : int or None
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

    # -- views -------------------------------------------------------------------------------
    def plot(self) -> dict:
        """Figures of this comparison.

        Returns
        -------
        dict of str -> matplotlib.figure.Figure
            ``"forest"`` (means and 94% HDIs per back-end), ``"history"`` (convergence of the
            iterative back-ends) and ``"model"`` (a model-specific picture) where available.
        """
        from . import plots

        figures = {"forest": plots.forest(self), "history": plots.history(self), "model": plots.model_picture(self)}
        return {name: figure for name, figure in figures.items() if figure is not None}

    def summary(self) -> str:
        """A short plain-text paragraph: what ran, what failed, who agrees with the reference."""
        model_name = type(self.model).__name__
        n_obs = self.model.n_observations(self.data)
        ran = [name for name in self.backends if name in self.idatas]
        parts = [f"{len(ran)} of {len(self.backends)} back-ends fitted {model_name} to {n_obs} observations"]
        if self.reference in self.failures:
            parts[0] += f" (the reference, {self.reference}, failed, so nothing is measured against it)."
        else:
            parts[0] += f" (reference: {self.reference})." if self.reference else " (no reference back-end)."
        if self.failures:
            failed = "; ".join(f"{name} ({message.split(':')[0]})" for name, message in self.failures.items())
            parts.append(f"Failed: {failed}.")
        table = self.table
        if len(table):
            not_converged = sorted(set(table.loc[~table["converged"].astype(bool), "backend"]))
            if not_converged:
                parts.append("Not converged by their own criteria: " + ", ".join(not_converged) + ".")
            if self.reference in self.idatas:
                others = table[table["backend"] != self.reference]
                error = others["error_in_ref_sd"].abs()
                if error.notna().any():
                    worst = others.loc[error.idxmax()]
                    close = sorted(set(others["backend"]) - set(others.loc[error > 0.5, "backend"]))
                    parts.append(
                        f"Largest disagreement with the reference: {worst['backend']} on {worst['parameter']} "
                        f"(mean {worst['mean']:.3g} vs {worst['ref_mean']:.3g}, "
                        f"{worst['error_in_ref_sd']:+.2f} reference sd)."
                    )
                    if close:
                        parts.append("Within 0.5 reference sd on every parameter: " + ", ".join(close) + ".")
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

        Files: ``<backend>.nc`` per back-end (``arviz.from_netcdf`` reads them back, with the
        ``fit_history`` group and attrs), ``table.csv``, ``<figure>.png`` per figure, and a
        self-contained ``report.html`` (tables inline, figures embedded as base64 PNG).

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
            idata.to_netcdf(str(directory / f"{name}.nc"))
        self.table.to_csv(directory / "table.csv", index=False)
        images = {}
        for name, figure in self.plot().items():
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=110)
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
            "reference": str(self.reference),
            "random_seed": str(self.random_seed),
            "options": "; ".join(f"{name}: {opts}" for name, opts in self.options.items() if opts) or "defaults",
            "versions": ", ".join(f"{p} {installed(p)}" for p in ("latentzoo", "pymc", "arviz", "numpy")),
            "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        }

    def _html(self, images: dict) -> str:
        escape = html.escape
        title = f"latentzoo: {type(self.model).__name__} — comparison of back-ends"
        table_html = self.table.to_html(
            index=False, float_format=lambda v: f"{v:.4g}", na_rep="–", border=0, classes="table"
        )
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
            "history": "Convergence: the objective per iteration of each iterative back-end "
            "(EM: log-posterior, VB and ADVI: ELBO).",
            "model": "The model's own picture.",
        }
        figures = "".join(
            f"<figure><img alt='{escape(name)}' src='data:image/png;base64,{data}'/>"
            f"<figcaption>{escape(captions.get(name, name))}</figcaption></figure>"
            for name, data in images.items()
        )
        return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.85em; }}
th, td {{ padding: 0.25em 0.6em; border-bottom: 1px solid #ddd; text-align: right; }}
th {{ background: #f4f4f4; }}
.settings th, .settings td {{ text-align: left; }}
figure {{ margin: 1.5em 0; }} img {{ max-width: 100%; }}
figcaption {{ color: #555; font-size: 0.9em; }}
.summary {{ background: #f6f8fa; padding: 0.8em 1em; border-left: 4px solid #4a7; }}
</style></head><body>
<h1>{escape(title)}</h1>
<p class="summary">{escape(self.summary())}</p>
<h2>Figures</h2>{figures}
<h2>Table</h2>
<p>One row per back-end and parameter. <code>error_in_ref_sd</code> = (mean − reference mean) / reference sd.
<code>r_hat</code> only for samplers with several chains; <code>sd</code> and HDI are empty for point estimates.</p>
{table_html}
<h2>Failures</h2><ul>{failures}</ul>
<h2>Warnings</h2><ul>{warning_items}</ul>
<h2>Settings</h2><table class="settings">{settings}</table>
<p>Each back-end's InferenceData is saved next to this file as <code>&lt;backend&gt;.nc</code>
(<code>arviz.from_netcdf</code>); the table as <code>table.csv</code>.</p>
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


def _attr(idata, key, default=float("nan")):
    return idata.posterior.attrs.get(key, default)


def _variable_stats(idata, names: list[str], kind: str) -> dict[str, dict]:
    """mean, sd, HDI, ESS, R-hat arrays per variable (each of the variable's shape)."""
    import arviz as az

    posterior = idata.posterior[names]
    n_chain, n_draw = posterior.sizes["chain"], posterior.sizes["draw"]
    point = n_chain * n_draw == 1
    stats = {name: {"mean": posterior[name].mean(("chain", "draw")).values} for name in names}
    if point:
        return stats
    with warnings.catch_warnings():
        # ArviZ warns about short chains; the numbers are still the right ones to show
        warnings.simplefilter("ignore")
        hdi = az.hdi(posterior, hdi_prob=HDI_PROB)
        ess = az.ess(posterior, method="bulk") if n_draw >= 4 else None
        rhat = az.rhat(posterior) if kind == "sampler" and n_chain > 1 else None
    for name in names:
        stats[name]["sd"] = posterior[name].std(("chain", "draw"), ddof=1).values
        stats[name]["hdi_3%"] = hdi[name].sel(hdi="lower").values
        stats[name]["hdi_97%"] = hdi[name].sel(hdi="higher").values
        if ess is not None:
            stats[name]["ess_bulk"] = ess[name].values
        if rhat is not None:
            stats[name]["r_hat"] = rhat[name].values
    return stats


def comparison_table(model, idatas: dict, reference: str | None = None):
    """The tidy comparison table.

    Parameters
    ----------
    model : latentzoo model
    idatas : dict of str -> arviz.InferenceData
        Back-end name -> result (already relabelled where needed).
    reference : str, optional
        Back-end whose mean and sd fill ``ref_mean`` and ``ref_sd``.

    Returns
    -------
    pandas.DataFrame
        One row per (back-end, element of each parameter and derived quantity), columns
        :data:`TABLE_COLUMNS`. Per-observation latent posteriors are left out.
    """
    import pandas as pd

    names = list(model.param_names) + list(model.derived_dims())
    per_backend = {}
    for backend, idata in idatas.items():
        kind = BACKENDS[backend].kind if backend in BACKENDS else "unknown"
        per_backend[backend] = (kind, _variable_stats(idata, names, kind))
    rows = []
    for backend, idata in idatas.items():
        kind, stats = per_backend[backend]
        diverging = idata.sample_stats.get("diverging") if "sample_stats" in idata.groups() else None
        divergences = float(np.sum(diverging.values)) if diverging is not None else math.nan
        for name in names:
            values = stats[name]
            for label, index in _element_labels(name, np.shape(values["mean"])):
                row = {"backend": backend, "parameter": label, "kind": kind}
                for column in ("mean", "sd", "hdi_3%", "hdi_97%", "ess_bulk", "r_hat"):
                    row[column] = float(values[column][index]) if column in values else math.nan
                reference_stats = per_backend.get(reference, (None, None))[1]
                if reference_stats is not None:
                    row["ref_mean"] = float(reference_stats[name]["mean"][index])
                    reference_sd = reference_stats[name].get("sd")
                    row["ref_sd"] = float(reference_sd[index]) if reference_sd is not None else math.nan
                else:
                    row["ref_mean"] = row["ref_sd"] = math.nan
                with np.errstate(divide="ignore", invalid="ignore"):
                    row["error_in_ref_sd"] = (
                        (row["mean"] - row["ref_mean"]) / row["ref_sd"] if row["ref_sd"] > 0 else math.nan
                    )
                row["divergences"] = divergences
                row["runtime_s"] = float(_attr(idata, "runtime_s"))
                row["converged"] = bool(_attr(idata, "converged", 1))
                row["n_iter"] = _attr(idata, "n_iter", -1)
                rows.append(row)
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    return table.astype({"n_iter": "Int64", "converged": bool})


# -- compare ----------------------------------------------------------------------------------
def _resolve_backends(model, backends, reference) -> tuple[list[str], str | None]:
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
        get_backend(model, name)
    if len(set(names)) != len(names):
        raise ValueError(f"backends lists a back-end twice: {names}")
    if isinstance(reference, str) and reference == "auto":
        reference = "exact" if "exact" in valid else "nuts"
    if reference is not None:
        if not isinstance(reference, str):
            raise TypeError(f"reference must be 'auto', a backend name or None, got {type(reference).__name__}")
        try:
            get_backend(model, reference)
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
    unknown = set(options) - set(names)
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


def _run_one(model, data, backend, random_seed, options, progressbar):
    """Fit one back-end; returns (idata or None, failure or None, warning messages)."""
    spec = BACKENDS[backend]
    if "progressbar" in spec.options and "progressbar" not in options:
        options = {**options, "progressbar": progressbar}
    messages = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
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
    return idata, failure, messages


def compare(
    model,
    data,
    backends=None,
    reference="auto",
    random_seed: int | None = 0,
    options: dict | None = None,
    progressbar: bool = True,
    callback: Callable | None = None,
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
    reference : {"auto"} or str or None, default "auto"
        The yardstick: ``"auto"`` is ``"exact"`` where it applies and ``"nuts"`` otherwise. It
        is always run (added in front of ``backends`` if missing). None: no reference columns.
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
    names, reference = _resolve_backends(model, backends, reference)
    options = _check_options(options, names)
    if not isinstance(progressbar, bool):
        raise TypeError(f"progressbar must be True or False, got {type(progressbar).__name__}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
    data = model.check_data(data)
    # the reference runs first so that the others can be relabelled to it as they come
    order = ([reference] if reference else []) + [name for name in names if name != reference]
    idatas, failures, caught = {}, {}, {}
    for backend in order:
        if callback is not None:
            callback(backend, "start", None)
        start = time.perf_counter()
        idata, failure, messages = _run_one(model, data, backend, random_seed, options.get(backend, {}), progressbar)
        caught[backend] = messages
        if failure is not None:
            failures[backend] = failure
        else:
            idatas[backend] = idata
        if callback is not None:
            callback(backend, "failed" if failure else "done", failure or time.perf_counter() - start)
    idatas = _relabelled(model, data, idatas, reference)
    idatas = {name: idatas[name] for name in names if name in idatas}
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
