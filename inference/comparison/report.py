"""Present a finished :class:`~latentzoo.inference.comparison.compare.Comparison`: prose, figures, files.

Everything here reads the results a comparison already holds; nothing fits a model.

* :func:`summarize` and :func:`summary` -- the plain-language findings;
* :func:`figures` -- the figures of :mod:`latentzoo.inference.comparison.plots`, by name;
* :func:`render_html` -- the self-contained HTML page (the jinja2 template
  ``templates/report.html.j2``, autoescaped);
* :func:`save` -- every file of a comparison in one directory, as many as can be written, listed
  in a manifest; :func:`check_directory` says beforehand whether a save there would succeed.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import tempfile
import time
from functools import cache
from pathlib import Path

import numpy as np

from .metrics import COLUMN_DOCS


__all__ = ["MANIFEST", "SaveError", "check_directory", "figures", "planned_files", "render_html", "save", "summarize",
           "summary"]

TEMPLATE_DIRECTORY = Path(__file__).parent.parent / "templates"
REPORT_TEMPLATE = "report.html.j2"


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
    table : pandas.DataFrame with the columns of :data:`~latentzoo.inference.comparison.metrics.TABLE_COLUMNS`
    reference : str, optional
        The reference back-end's name in ``table["backend"]``.
    failures : dict of str -> str, optional
        Back-end -> ``"ExceptionType: message"``.
    loo : pandas.DataFrame, optional
        From :func:`~latentzoo.inference.comparison.metrics.loo_table`.

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
    from ..diagnostics import RHAT_LIMIT

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


def summary(comparison) -> str:
    """A short plain-language paragraph: what ran, against which reference, who agrees and
    who fails how (see :func:`summarize`)."""
    model_name = type(comparison.model).__name__
    n_obs = comparison.model.n_observations(comparison.data)
    ran = [name for name in comparison.backends if name in comparison.idatas]
    unit = comparison.model.observation_dim
    observations = f"{n_obs} {unit}{'' if n_obs == 1 else 's'}"
    if not ran:
        failed = "; ".join(f"{name}: {message}" for name, message in comparison.failures.items())
        return (f"Every back-end failed: none of the {len(comparison.backends)} fitted {model_name} to "
                f"{observations}, so there is nothing to compare. {failed}.")
    opening = f"{len(ran)} of {len(comparison.backends)} back-ends fitted {model_name} to {observations}"
    if comparison.reference and comparison.reference not in comparison.failures:
        opening += f" (reference: {comparison.reference_info or comparison.reference})."
    elif not comparison.reference:
        opening += " (no reference)."
    else:
        opening += "."
    parts = [opening, summarize(comparison.table, comparison.reference, comparison.failures, comparison.loo)]
    if len(comparison.table) and comparison.reference in comparison.idatas:
        parts.append(_identification_note(comparison))
    n_warned = sum(bool(messages) for messages in comparison.warnings.values())
    if n_warned:
        parts.append(f"{n_warned} back-end(s) raised warnings (see the report).")
    return " ".join(part for part in parts if part)


def _identification_note(comparison) -> str:
    """Which reported quantities the data pin down best, by reference sd relative to prior sd.

    The prior sd is unknown in general, so the comparison is between quantities: the one with
    the smallest reference sd and the one with the largest (a ridge shows up as a factor of
    several between them, e.g. ``heads_prob`` against ``p`` and ``q``).
    """
    table = comparison.table
    reference = table[table["backend"] == comparison.reference].dropna(subset=["sd"])
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


# -- figures ---------------------------------------------------------------------------------------
#: the caption of each figure in the report, by the figure name's part before the first "-"
CAPTIONS = {
    "forest": "Posterior mean and 94% HDI per back-end (point estimates: diamonds only). "
    "The shaded band is the reference's interval.",
    "densities": "Marginal posterior densities per back-end, overlaid (point estimates: vertical lines).",
    "history": "Convergence: each iterative back-end's objective per iteration, divided by the number "
    "of observations so that they share an axis (EM: log-posterior, VB and ADVI: ELBO).",
    "traces": "MCMC traces and per-chain densities (arviz-plots), one colour per chain: well-mixed chains "
    "overlap like noise around one level, and their densities agree.",
    "model": "The model's own picture.",
}


def figures(comparison, errors: dict | None = None) -> dict:
    """The figures of a comparison, by name (see :meth:`~latentzoo.inference.comparison.compare.Comparison.plot`).

    Parameters
    ----------
    comparison : Comparison
    errors : dict, optional
        Where to record a figure that could not be drawn (``name -> "ExceptionType: message"``)
        and go on with the others; by default the first failure raises.

    Returns
    -------
    dict of str -> matplotlib.figure.Figure
        ``"forest"``, ``"densities"``, ``"history"``, ``"traces-<sampler>"`` and ``"model"``,
        where each applies.
    """
    from . import plots

    if not comparison.idatas:
        return {}  # every back-end failed: nothing to draw
    makers = {
        "forest": plots.forest,
        "densities": plots.densities,
        "history": plots.history,
        "traces": plots.traces,  # a dict of figures, one per sampler
        "model": plots.model_picture,
    }
    drawn = {}
    for name, make in makers.items():
        try:
            figure = make(comparison)
        except Exception as error:  # when saving, one broken figure must not cost the others
            if errors is None:
                raise
            errors[name] = _describe(error)
            continue
        drawn.update(figure if isinstance(figure, dict) else {name: figure})
    return {name: figure for name, figure in drawn.items() if figure is not None}


# -- the HTML page ---------------------------------------------------------------------------------
def _settings(comparison) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    def installed(package):
        try:
            return version(package)
        except PackageNotFoundError:
            return "?"

    model, data = comparison.model, comparison.data
    observed = model.observed_data(data)
    shapes = ", ".join(f"{name} {np.shape(array)} {dims}" for name, (array, dims) in observed.items())
    # small data sets are shown in full, so that the report alone says what was fitted
    values = "; ".join(
        f"{name} = " + np.array2string(np.asarray(array), separator="", threshold=200, max_line_width=120)
        for name, (array, _) in observed.items()
    )
    return {
        "model": repr(model),
        "observations": f"{model.n_observations(data)}: {shapes}",
        "data": values,
        "back-ends": ", ".join(comparison.backends),
        "reference": f"{comparison.reference}: {comparison.reference_info}" if comparison.reference else "none",
        "random_seed": str(comparison.random_seed),
        "options": "; ".join(f"{name}: {opts}" for name, opts in comparison.options.items() if opts) or "defaults",
        "versions": ", ".join(f"{p} {installed(p)}" for p in ("latentzoo", "pymc", "pytensor", "arviz", "numpy")),
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


@cache
def _environment():
    import jinja2

    # autoescape everywhere: back-end, parameter and model names and messages are the caller's text
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIRECTORY),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "j2"), default_for_string=True, default=True),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def render_html(comparison, images: dict, summary_text: str | None = None, docs_url: str | None = None) -> str:
    """The self-contained HTML report: tables inline, figures embedded, no external resources
    (the links to the model's lesson and API page are the only addresses outside the page).

    Parameters
    ----------
    comparison : Comparison
    images : dict of str -> str
        Figure name -> base64-encoded PNG.
    summary_text : str, optional
        The summary paragraph (default: :func:`summary`).
    docs_url : str, optional
        The docs site's base URL; by default the one :func:`latentzoo.inference.docs_links.docs_site`
        finds (the environment variable, a local build, the package's metadata).

    Returns
    -------
    str
    """
    def number(value):
        return f"{value:.4g}"

    if summary_text is None:
        summary_text = summary(comparison)
    # pandas escapes the cells and headers itself (escape=True); the template inserts its HTML as it is
    table_html = comparison.table.to_html(index=False, float_format=number, na_rep="–", border=0, classes="table",
                                          escape=True)
    loo_html = None
    if comparison.loo is not None:
        loo_html = comparison.loo.to_html(float_format=number, na_rep="–", border=0, classes="table", escape=True)
    warning_items = [
        (name, message.removeprefix(f"{name}: "))
        for name, messages in comparison.warnings.items()
        for message in messages
    ]
    figure_items = [
        {"name": name, "data": data, "caption": CAPTIONS.get(name.partition("-")[0], name)}
        for name, data in images.items()
    ]
    from ..docs_links import docs_site

    site = docs_site(docs_url)
    docs = site.links(comparison.model) if site is not None else {"lesson": None, "api": None}
    return _environment().get_template(REPORT_TEMPLATE).render(
        title=f"latentzoo: {type(comparison.model).__name__} — comparison of back-ends",
        model_class=type(comparison.model).__name__,
        lesson=comparison.model.lesson if docs["lesson"] else None,
        docs=docs,
        summary=summary_text,
        reference=str(comparison.reference),
        reference_info=comparison.reference_info or "none",
        figures=figure_items,
        table_html=table_html,
        column_docs=COLUMN_DOCS,
        loo_html=loo_html,
        loo_note=comparison.loo_note,
        failures=comparison.failures,
        warnings=warning_items,
        settings=_settings(comparison),
    )


# -- saving ----------------------------------------------------------------------------------------
class SaveError(RuntimeError):
    """Some files of a comparison could not be written; every other file was.

    Attributes
    ----------
    failed : dict of str -> str
        File (or figure) name -> ``"ExceptionType: message"``.
    directory : pathlib.Path
    report : pathlib.Path or None
        ``report.html`` if it was written.
    """

    def __init__(self, failed: dict, directory: Path, report: Path | None):
        self.failed = dict(failed)
        self.directory = directory
        self.report = report
        listed = "; ".join(f"{name}: {message}" for name, message in failed.items())
        written = f"the rest is in {directory}" + (f" (report: {report.name})" if report is not None else "")
        super().__init__(f"could not write {len(failed)} file(s) of the comparison ({listed}); {written}")


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class _Writes:
    """Runs one write after another; a write that raises is recorded and the next one runs."""

    def __init__(self):
        self.failed: dict[str, str] = {}
        self.first_error: Exception | None = None

    def run(self, name: str, function, *args, **kwargs):
        """``function(*args, **kwargs)``, or None when it raised (recorded under ``name``)."""
        try:
            return function(*args, **kwargs)
        except Exception as error:  # the other files are still written
            self.failed[name] = _describe(error)
            self.first_error = self.first_error or error
            return None


#: the file in which :func:`save` lists what it wrote; only files listed there are ever removed
MANIFEST = "latentzoo-manifest.json"

#: figures whose file name is fixed (the trace figures are named per sampler, ``traces-<name>``)
_FIGURE_NAMES = ("forest", "densities", "history", "model")


def planned_files(backends) -> set[str]:
    """The names of every file a save of a comparison of ``backends`` may write (a superset:
    figures that do not apply are not drawn)."""
    names = {"table.csv", "loo.csv", "summary.txt", "report.html", MANIFEST}
    names |= {f"{figure}.png" for figure in _FIGURE_NAMES}
    for backend in backends:
        names |= {f"{backend}.nc", f"traces-{backend}.png"}
    return names


def check_directory(directory, backends, overwrite: bool = False) -> Path:
    """Check, before anything runs, that a comparison of ``backends`` can be saved in ``directory``.

    Parameters
    ----------
    directory : str or os.PathLike
        Need not exist; its nearest existing ancestor must be a directory one can write into.
    backends : sequence of str
        The back-ends (and reference) of the comparison.
    overwrite : bool, default False
        Whether an earlier comparison, or files of the names this save writes, may be replaced.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    TypeError
        ``directory`` is not a path.
    ValueError
        ``directory`` (or an ancestor) exists and is not a directory.
    PermissionError
        No file can be created there.
    FileExistsError
        ``directory`` holds an earlier comparison (a manifest) or a file of a name this save
        writes, and ``overwrite`` is False.
    """
    if not isinstance(directory, str | os.PathLike) or not os.fspath(directory):
        raise TypeError(f"directory must be a path, got {directory!r}")
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be True or False, got {type(overwrite).__name__}")
    directory = Path(directory).expanduser()
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "exists" if existing == directory else f"lies under {str(existing)!r}, which exists"
        raise ValueError(f"directory {str(directory)!r} {where} and is not a directory")
    try:
        # os.access says yes to root even on a read-only file system; creating a file tells the truth
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise PermissionError(f"cannot write into {str(existing)!r} (for {str(directory)!r}): "
                              f"{error.strerror or error}") from None
    if existing == directory and not overwrite:
        clashes = sorted(name for name in planned_files(backends) if (directory / name).exists())
        if clashes:
            what = "an earlier comparison" if MANIFEST in clashes else "files of the names a comparison writes"
            raise FileExistsError(
                f"directory {str(directory)!r} already holds {what} ({', '.join(clashes[:6])}"
                f"{', ...' if len(clashes) > 6 else ''}); pass overwrite=True (command line: --overwrite) to "
                "replace it, or choose another directory"
            )
    return directory


def _listed_files(directory: Path) -> list[str]:
    """The files an earlier save listed in ``directory``'s manifest that are still there: plain
    names of regular files (anything else in a manifest is ignored, never removed)."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        names = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    if not isinstance(names, list):
        return []
    return [name for name in names if isinstance(name, str) and name and name == Path(name).name
            and name not in (".", "..") and (directory / name).is_file()]


def _write_manifest(directory: Path, files, complete: bool) -> None:
    """The manifest, written whole or not at all (a temporary file moved into place)."""
    content = json.dumps({"written_by": "latentzoo", "content": "comparison", "complete": complete,
                          "files": sorted(files)}, indent=1)
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=f".{MANIFEST}.", suffix=".part")
    try:
        os.chmod(temporary, 0o644)  # mkstemp makes it private; the other files of the report are not
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(content + "\n")
        os.replace(temporary, directory / MANIFEST)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def save(comparison, directory, overwrite: bool = False, docs_url: str | None = None) -> Path:
    """Write ``comparison`` to ``directory`` as :meth:`~latentzoo.inference.comparison.compare.Comparison.save`
    describes; return the path of ``report.html`` (which links the model's lesson and API page
    on the docs site at ``docs_url``, or the one :func:`latentzoo.inference.docs_links.docs_site` finds).

    Every file is attempted: a failing write (a full disk, a result that NetCDF cannot encode,
    a figure that cannot be drawn) does not stop the others, so nothing already computed is
    lost to a later step. The failures are raised together at the end, as a :class:`SaveError`.

    What was written is listed in :data:`MANIFEST`. Before anything is written,
    :func:`check_directory` refuses a directory that is not one, cannot be written into, or
    holds an earlier comparison or files of the names this save writes (unless ``overwrite``).
    With ``overwrite=True`` the files the earlier manifest lists are removed first, so that none
    of the earlier comparison is left stale (a back-end's ``.nc`` or figure that this one lacks);
    files no manifest lists are never removed (those of the names this save writes are replaced).
    A comparison in which every back-end failed is saved too: its summary and report say so.
    """
    from ..docs_links import docs_site

    docs_site(docs_url)  # a docs_url that is not a URL string fails here, before anything is written
    names = list(dict.fromkeys([*comparison.backends, *comparison.idatas]))
    directory = check_directory(directory, names, overwrite)
    directory.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for name in _listed_files(directory):
            (directory / name).unlink()
    # listed before they are written, so that an interrupted save can still be replaced whole; a
    # file already there (not ours: the earlier comparison's are gone) is listed only once written
    ours = {name for name in planned_files(names) if not (directory / name).exists()}
    _write_manifest(directory, ours, False)
    writes = _Writes()
    written = set()

    def write(name: str, function, *args, **kwargs):
        result = writes.run(name, function, *args, **kwargs)
        if name not in writes.failed:
            written.add(name)
        return result

    for name, idata in comparison.idatas.items():
        # uncompressed (the default): zlib took 2-3 s for a GMM run's per-point latent draws
        write(f"{name}.nc", idata.to_netcdf, directory / f"{name}.nc")
    write("table.csv", comparison.table.to_csv, directory / "table.csv", index=False)
    if comparison.loo is not None:
        write("loo.csv", comparison.loo.to_csv, directory / "loo.csv")
    summary_text = writes.run("summary.txt", summary, comparison)
    if summary_text is not None:
        write("summary.txt", (directory / "summary.txt").write_text, summary_text + "\n", encoding="utf-8")
    figure_errors = {}
    images = {}
    for name, figure in figures(comparison, errors=figure_errors).items():
        png = writes.run(f"{name}.png", _png, figure)
        if png is not None and write(f"{name}.png", (directory / f"{name}.png").write_bytes, png) is not None:
            images[name] = base64.b64encode(png).decode("ascii")
    writes.failed.update({f"{name} figure": message for name, message in figure_errors.items()})
    if summary_text is None:
        summary_text = f"(The summary could not be made: {writes.failed['summary.txt']})"
    report = directory / "report.html"
    page = writes.run("report.html", render_html, comparison, images, summary_text, docs_url)
    if page is None or write("report.html", report.write_text, page, encoding="utf-8") is None:
        report = None
    # a write that failed half-way may have left its file: listed, so that an overwrite removes it
    listed = {name for name in ours | written if (directory / name).exists()} | {MANIFEST}
    writes.run(MANIFEST, _write_manifest, directory, listed, not writes.failed)
    if writes.failed:
        raise SaveError(writes.failed, directory, report) from writes.first_error
    return report


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()
