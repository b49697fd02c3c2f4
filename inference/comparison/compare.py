"""Run several back-ends on one model and data set and put the results side by side.

:func:`compare` fits every requested back-end with :func:`~latentzoo.inference.fit`, keeps going
when one of them fails (the failure is part of the answer), relabels exchangeable labels to the
reference back-end, and returns a :class:`Comparison` holding the result DataTrees, one
tidy table, figures and a self-contained HTML report.

This module orchestrates; the numbers are computed in :mod:`latentzoo.inference.comparison.metrics` and
presented (summary, figures, HTML, files) by :mod:`latentzoo.inference.comparison.report`, whose public
names are re-exported here.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ...models.core.protocols import Model
from ..core import ConvergenceWarning
from ..labels import labelled_names, reference_from, relabel, relabel_by_model, relabel_self
from ..lean import check_per_observation
from ..options import check_bool, check_float, check_int, check_tolerance
from ..registry import BACKENDS, seed_from, applicable_backends, fit, get_backend
from . import report
from .metrics import COLUMN_DOCS, TABLE_COLUMNS, comparison_table, loo_table
from .reference import REFERENCE_NUTS, check_cache, check_reference_options, reference_nuts
from .report import summarize

__all__ = ["Comparison", "compare", "comparison_table", "loo_table", "resolve_backends", "summarize", "TABLE_COLUMNS", "COLUMN_DOCS"]

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
        One row per (back-end, parameter element), columns
        :data:`~latentzoo.inference.comparison.metrics.TABLE_COLUMNS`.
    backends : list of str
        The back-ends requested (and the reference), in the order they were run.
    options : dict of str -> dict
        Options passed to each back-end.
    random_seed : int or None
    reference_info : str
        What the reference is and where it came from (exact draws, a cached NUTS run, ...).
    loo : pandas.DataFrame or None
        PSIS-LOO per back-end with draws (:func:`~latentzoo.inference.comparison.metrics.loo_table`), or None.
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

    # -- views (drawn and written by latentzoo.inference.comparison.report) ---------------------------------
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
        return report.figures(self)

    def summary(self) -> str:
        """A short plain-language paragraph: what ran, against which reference, who agrees and
        who fails how (see :func:`~latentzoo.inference.comparison.report.summarize`)."""
        return report.summary(self)

    def save(self, directory, overwrite: bool = False, docs_url: str | None = None) -> Path:
        """Write the comparison to ``directory`` (created if needed).

        Files: ``<backend>.nc`` per back-end (``xarray.open_datatree`` or ``arviz.from_netcdf``
        reads them back, with the ``fit_history`` group and attrs), ``table.csv``, ``loo.csv`` (where LOO applies),
        ``summary.txt``, ``<figure>.png`` per figure, and a self-contained ``report.html``
        (tables inline, figures embedded as base64 PNG, no external resources).

        Every file is attempted even when an earlier one fails; the failures are raised
        together at the end (:class:`~latentzoo.inference.comparison.report.SaveError`).

        The files written are listed in ``latentzoo-manifest.json``. A directory that holds an
        earlier comparison (its manifest), or a file of the name of one this save may write, is
        refused unless ``overwrite=True``; then the earlier comparison's files (those its
        manifest lists, and no other) are removed first, so that none of them is left stale,
        while files latentzoo did not write stay (see :func:`~latentzoo.inference.comparison.report.save`).

        Parameters
        ----------
        directory : str or os.PathLike
        overwrite : bool, default False
            Replace an earlier comparison in ``directory``.
        docs_url : str, optional
            The docs site the report links the model's lesson and API page on (default:
            ``LATENTZOO_DOCS_URL``, else a local ``make docs`` build, else the package's
            ``Documentation`` URL; see :mod:`latentzoo.inference.docs_links`).

        Returns
        -------
        pathlib.Path
            The path of ``report.html``.

        Raises
        ------
        ValueError
            ``directory`` exists and is not a directory.
        FileExistsError
            ``directory`` holds an earlier comparison or a file this save would replace, and
            ``overwrite`` is False (nothing is written).
        latentzoo.inference.comparison.report.SaveError
            Some files could not be written (listed); all the others were.
        """
        return report.save(self, directory, overwrite=overwrite, docs_url=docs_url)


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
        if isinstance(backends, bytes | dict):
            raise TypeError(f"backends must be a sequence of names or None, got {type(backends).__name__}")
        try:
            names = list(backends)
        except TypeError:
            raise TypeError(f"backends must be a sequence of names or None, got {type(backends).__name__}") from None
        strange = [name for name in names if not isinstance(name, str)]
        if strange:
            raise TypeError(f"backends must hold back-end names (str), got {strange[0]!r} "
                            f"({type(strange[0]).__name__})")
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


#: back-end options that mean the same and are checked the same way in every back-end that has
#: them (the checks of :mod:`latentzoo.inference.options` the back-ends themselves apply), so that
#: compare can refuse a bad value before anything runs; None is left to the back-end (some take it)
_UNIFORM_OPTIONS = {
    "draws": check_int,
    "chains": check_int,
    "tune": lambda value, name: check_int(value, name, minimum=0),
    "n_init": check_int,
    "max_iter": check_int,
    "n_steps": check_int,
    "cores": check_int,
    "tol": check_tolerance,
    "progressbar": check_bool,
    "mle": check_bool,
    "learning_rate": check_float,
    "target_accept": check_float,
}


def _check_option_values(options: dict) -> None:
    for backend, values in options.items():
        for key, value in values.items():
            if value is not None and key in _UNIFORM_OPTIONS:
                _UNIFORM_OPTIONS[key](value, f"options[{backend!r}][{key!r}]")


def _run_one(model, data, backend, random_seed, options, progressbar, reference_options=None, cache=True,
             per_observation="auto"):
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
                idata = fit(model, data, backend=backend, random_seed=random_seed,
                            per_observation=per_observation, **options)
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
    per_observation: str = "auto",
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
        (:mod:`latentzoo.inference.comparison.reference`). A back-end name uses that back-end's own run.
        The reference is always run (added in front of ``backends`` if missing). None: no
        reference columns.
    random_seed : int or None, default 0
        Passed to every back-end, so the whole comparison is repeatable.
    options : dict of str -> dict, optional
        Per back-end options, e.g. ``{"nuts": {"chains": 2}, "em": {"n_init": 10}}``;
        names and the values every back-end checks alike are validated up front; the rest by
        the back-end itself (a bad one is recorded as that back-end's failure).
    progressbar : bool, default True
        Passed to back-ends that show progress, unless their ``options`` set it.
    callback : callable, optional
        ``callback(backend, event, detail)`` with event ``"start"``, ``"done"`` (detail: the
        runtime in seconds) or ``"failed"`` (detail: the message), e.g. for a status line.
    reference_options : dict, optional
        Settings of the long NUTS reference (``draws``, ``tune``, ``chains``,
        ``target_accept``, ...); see :data:`~latentzoo.inference.comparison.reference.DEFAULT_REFERENCE_OPTIONS`.
    per_observation : {"auto", "full", "lazy", "summary"}, default "auto"
        How each back-end's result holds its per-observation quantities (:func:`fit`'s option;
        :mod:`latentzoo.inference.lean`). ``"summary"`` leaves out the pointwise log-likelihood,
        so the LOO table is empty and says why.
        Checked here even when the reference is not the long NUTS run (then they are unused).
    cache : bool or path, default True
        Where the long NUTS reference is cached: True the default directory
        (``$LATENTZOO_CACHE/reference`` or ``~/.cache/latentzoo/reference``), a path that
        directory, False no cache (always run, never write).

    Returns
    -------
    Comparison

    Raises
    ------
    TypeError, ValueError
        Every argument is checked before anything runs, and a bad one is named: ``model`` not a
        latentzoo model; unknown or inapplicable back-end names (the message lists the valid
        ones) or duplicates; options for a back-end that is not compared, unknown option names,
        or bad values of the options every back-end checks alike (``draws``, ``chains``,
        ``tune``, ``tol``, ``max_iter``, ...); ``random_seed`` (as :func:`fit` checks it);
        ``reference_options``; ``cache``; ``progressbar``; ``callback``; data the model
        refuses. Errors *inside* a back-end do not raise: they are recorded in
        ``Comparison.failures`` (all of them, when every back-end fails; the summary says so).

    Examples
    --------
    >>> from latentzoo.models import ThreeCoins
    >>> from latentzoo.inference import compare
    >>> result = compare(ThreeCoins(), "1111110000", backends=["em", "vb"])  # doctest: +SKIP
    >>> result.table[["backend", "parameter", "mean", "error_in_ref_sd"]]  # doctest: +SKIP
    """
    if not isinstance(model, Model):
        raise TypeError(f"model must be a latentzoo model (e.g. ThreeCoins()), got {type(model).__name__}")
    names, reference = resolve_backends(model, backends, reference)
    options = _check_options(options, names)
    _check_option_values(options)
    if random_seed is not None:
        seed_from(random_seed)  # fit's own check, so that a bad seed fails here and not in every back-end
    reference_options = check_reference_options(reference_options)
    cache = check_cache(cache)
    per_observation = check_per_observation(per_observation)
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
                                                  progressbar, reference_options, cache, per_observation)
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
    label_dim = model.label_dim
    if label_dim is None or not idatas:
        return idatas
    anchor = reference if reference in idatas else next(iter(idatas))
    # models whose labels appear twice (HMM: trans_mat (state, state_next)) declare the pairing
    paired = model.paired_label_dims
    variables = labelled_names(model, {**model.param_dims(), **model.derived_dims()})
    # the reference's own draws may switch labels too; make them consistent before averaging
    anchored = relabel_self(idatas[anchor], label_dim, variables=variables, paired_dims=paired)
    target = reference_from(anchored, label_dim, variables=variables, paired_dims=paired)
    return {
        name: anchored if name == anchor else relabel(idata, target, label_dim, paired_dims=paired)
        for name, idata in idatas.items()
    }
