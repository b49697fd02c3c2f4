"""Simulation-based calibration (SBC) of any back-end: :func:`calibrate` and its result.

For ``n_simulations`` times: draw ``theta`` from the model's prior, simulate a data set of
``data_size`` at ``theta`` (``model.simulate``), fit it with ``fit(model, data, backend=...)`` and
compare the fit with ``theta``. The statistics (ranks, bands, tests) are in
:mod:`latentzoo.inference.calibration.sbc_ranks`, the plots and files in
:mod:`latentzoo.inference.calibration.report`.

What each kind of back-end is judged by:

* samplers (``gibbs``, ``nuts``, ``pymc_gibbs``) and ``exact``: the rank of the true value among
  posterior draws thinned to about their ESS (:func:`~.sbc_ranks.thinning_stride`);
* variational back-ends (``vb``, ``advi``, ``fullrank_advi``): the same ranks, among draws from
  q; VSBC's symmetry test (Yao et al. 2018) per quantity; and for ``vb``, whose q(theta) is in
  the result (the ``variational`` group), the PSIS k-hat of ``p(theta, y) / q(theta)`` per
  simulation;
* point estimates (``em``, ``map``): bias and RMSE only; ``calibrated`` is NA (they report no
  uncertainty to calibrate).

Labels: a model with exchangeable labels (``label_dim``) has the truth and every draw relabelled
(Hungarian matching, :func:`~latentzoo.inference.labels.relabel`) against a *pivot*: the fit's
first draw, which is then left out of the ranks. Given the data, the truth and the other draws
are independent draws from the same posterior when the back-end is right, and so are their
images under one relabelling that depends on neither, so the ranks stay uniform however much
mass the posterior puts on other labellings. (Relabelling the draws against the truth itself,
the obvious choice, pulls them towards the truth when labels are ambiguous: the exact posterior
of a two-state categorical HMM on 12 steps failed calibration on ``init_probs`` that way,
p = 7e-5.) Point estimates, which have no ranks, are matched to the truth. A model with an
identification rule (the exchangeable three coins) has both the truth and the draws put in its
identified labelling (a function of theta alone, so ranks stay exactly uniform).

A model with a data-driven default prior (``GaussianMixture()``, ``NIWGaussian()``) has its prior
fixed once from its example data (``model.with_data_prior(model.default_data())``), so that every
simulation draws from, and fits with, one explicit prior.

Finished simulations are cached, one file each, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import math
import numbers
import os
import pickle
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...models.core.protocols import DataDrivenPrior, ExampleData, IdentificationRule
from ..registry import get_backend
from .result import Calibration
from .table import build_result

__all__ = ["Calibration", "calibrate", "cache_directory", "quantity_spec", "default_data_size"]

#: part of every cache key: bump when what a cached simulation holds changes meaning
_FORMAT = "latentzoo-calibration-1"

#: prior draws used to find each quantity's prior sd (the unit of bias and RMSE)
PRIOR_SD_DRAWS = 4000

#: the family-wise level of ``calibrated``: split over the quantities and tests (Bonferroni)
DEFAULT_ALPHA = 0.05


def cache_directory() -> Path:
    """Where finished simulations are kept: ``$LATENTZOO_CACHE/calibration`` or the platform's
    user cache directory (``~/.cache/latentzoo/calibration`` on Linux)."""
    from ..comparison.reference import cache_directory as reference_directory

    return reference_directory().parent / "calibration"


# -- what is ranked ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class QuantitySpec:
    """The scalar quantities a calibration reports: every element of every parameter and derived
    quantity, less those that never vary under the prior (masked probabilities) and exact copies of
    an earlier one (the lower triangle of a covariance matrix).

    Attributes
    ----------
    labels : tuple of str
        One row name per kept element (``"means[1, x1]"``).
    keep : int ndarray
        Indices of the kept elements in the flattened quantities (:func:`flatten_quantities`).
    prior_sd : ndarray of shape (n_kept,)
    """

    labels: tuple
    keep: np.ndarray
    prior_sd: np.ndarray


def prior_draw(model, rng: np.random.Generator, size=None) -> dict:
    """Parameters drawn from ``model.prior()`` (joint factors such as a Normal-Inverse-Wishart give
    several names at once); with ``size``, arrays of shape ``size + param_shape``."""
    params = {}
    for key, distribution in model.prior().items():
        value = distribution.sample(rng, size=size)
        if isinstance(key, tuple):
            params.update(zip(key, value))
        else:
            params[key] = value
    values = {name: np.asarray(params[name], float) for name in model.param_names}
    # scalars as Python floats: the models' parameter checks take numbers, not 0-d arrays
    return {name: float(value) if value.ndim == 0 else value for name, value in values.items()}


def _identified(model, params: dict) -> dict:
    if isinstance(model, IdentificationRule):
        params, _ = model.relabel_draws(params)
    return params


def quantities(model, params: dict) -> dict:
    """Parameters and derived quantities at ``params`` (arrays of a common batch shape)."""
    values = {name: np.asarray(params[name], float) for name in model.param_names}
    values.update({name: np.asarray(value, float) for name, value in model.derived(params).items()})
    return values


def flatten_quantities(model, values: dict, batch_ndim: int) -> np.ndarray:
    """``batch + (n_elements,)``: every quantity's elements, in ``param_dims`` then ``derived_dims``
    order, C order within a quantity."""
    names = [*model.param_dims(), *model.derived_dims()]
    batch = np.shape(values[names[0]])[:batch_ndim]
    return np.concatenate([np.reshape(values[name], batch + (-1,)) for name in names], axis=-1)


def _element_labels(model, coords: dict) -> list[str]:
    dims = {**model.param_dims(), **model.derived_dims()}
    labels = []
    for name, name_dims in dims.items():
        if not name_dims:
            labels.append(name)
            continue
        axes = [list(coords[dim]) for dim in name_dims]
        for index in np.ndindex(*[len(axis) for axis in axes]):
            labels.append(f"{name}[{', '.join(str(axis[i]) for axis, i in zip(axes, index))}]")
    return labels


def quantity_spec(model, coords: dict, rng: np.random.Generator) -> QuantitySpec:
    """The rows of a calibration table and their prior sd, from :data:`PRIOR_SD_DRAWS` prior draws
    (put in the model's identified labelling, if it has a rule)."""
    draws = _identified(model, prior_draw(model, rng, size=(PRIOR_SD_DRAWS,)))
    flat = flatten_quantities(model, quantities(model, draws), 1)
    labels = _element_labels(model, coords)
    if len(labels) != flat.shape[1]:
        raise RuntimeError(f"{len(labels)} element labels for {flat.shape[1]} elements")
    keep = []
    for column in range(flat.shape[1]):
        if np.ptp(flat[:, column]) == 0:
            continue  # a masked probability: always 0, nothing to calibrate
        if any(np.array_equal(flat[:, column], flat[:, earlier]) for earlier in keep):
            continue  # a copy (symmetric matrices)
        keep.append(column)
    keep = np.asarray(keep, int)
    return QuantitySpec(tuple(labels[i] for i in keep), keep, flat[:, keep].std(axis=0, ddof=1))


def default_data_size(model):
    """The size of the model's example data, in the form ``model.simulate`` takes it.

    Raises
    ------
    ValueError
        When the model has no example data (give ``data_size``).
    """
    if not isinstance(model, ExampleData):
        raise ValueError(f"data_size is required: {type(model).__name__} has no example data to take the size from")
    data = model.check_data(model.default_data())
    if hasattr(data, "flips"):  # CoinData: (n_trials,) or (n_trials, n_flips)
        shape = data.flips.shape
        return int(shape[0]) if len(shape) == 1 else tuple(int(s) for s in shape)
    if hasattr(data, "offsets"):  # HMMData: one length per sequence
        lengths = [int(n) for n in np.diff(data.offsets)]
        return lengths[0] if data.single else lengths
    if hasattr(data, "x"):  # GaussianData
        return int(data.x.shape[0])
    if hasattr(data, "time"):  # SeriesData: one series of T steps
        return int(len(data.y))
    raise ValueError(f"cannot tell the size of {type(model).__name__}'s example data; give data_size")


def _explicit_prior(model):
    """The model with its data-driven prior fixed from its example data (see the module doc)."""
    if not isinstance(model, DataDrivenPrior):
        return model
    if not isinstance(model, ExampleData):
        raise ValueError(
            f"{type(model).__name__} has a data-driven prior and no example data to fix it from; "
            "give its hyperparameters explicitly"
        )
    return model.with_data_prior(model.default_data())


# -- one simulation ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Job:
    """Everything a worker needs (picklable)."""

    model: object
    backend: str
    kind: str
    library: str
    options: dict
    data_size: object
    random_seed: int
    keep: np.ndarray
    cache: str | None


def _seeds(random_seed: int, index: int) -> list[int]:
    # one child of the root seed per simulation, by its index: a longer run repeats a shorter one
    child = np.random.SeedSequence(random_seed, spawn_key=(index,))
    return [int(s) for s in child.generate_state(4, np.uint64) >> np.uint64(1)]


def _log_q(model, idata, draws: dict) -> np.ndarray | None:
    """log q(theta) of ``vb``'s draws from the ``variational`` group (None without one).

    Each factor of ``model.prior()`` is rebuilt from its parameters, stored as
    ``<names>_<field>`` (:func:`~latentzoo.inference.backends.vb.variational_parameters`).
    """
    import dataclasses

    if "variational" not in idata.children:
        return None
    group = idata["variational"].to_dataset()
    total = 0.0
    for key, prior in model.prior().items():
        names = key if isinstance(key, tuple) else (key,)
        prefix = "_".join(names)
        fields = {f.name: np.asarray(group[f"{prefix}_{f.name}"].values) for f in dataclasses.fields(prior)}
        factor = type(prior)(**fields)
        log_pdf = np.asarray(factor.log_pdf(*[draws[name] for name in names]), float)
        total = total + log_pdf.reshape(log_pdf.shape[:2] + (-1,)).sum(-1)
    return total


def _khat(model, data, idata, draws: dict) -> float:
    """PSIS k-hat of the importance ratios p(theta, y) / q(theta) over q's draws (NaN without q)."""
    from arviz_stats.base import array_stats

    log_q = _log_q(model, idata, draws)
    if log_q is None:
        return math.nan
    log_p = np.asarray(model.log_prior(draws), float) + np.asarray(model.log_likelihood(data, draws)).sum(-1)
    log_ratio = (log_p - log_q).ravel()
    if not np.all(np.isfinite(log_ratio)):
        return math.inf
    # psislw takes the negated log ratios (its LOO convention: minus the pointwise log-likelihood)
    _, khat = array_stats.psislw(-(log_ratio - log_ratio.max()), r_eff=1.0)
    return float(khat)


def _posterior_draws(model, idata, truth: dict, kind: str) -> tuple[dict, dict]:
    """The fit's parameter draws, (chain, draw, *shape) arrays, and the truth, both in one labelling.

    Models with a label dim: point estimates are matched to the truth; draws and truth alike are
    matched to the pivot (the draw at chain 0, draw 0, which the caller leaves out of the ranks).
    """
    from ..labels import relabel

    draws = {name: np.asarray(idata.posterior[name].values, float) for name in model.param_names}
    if model.label_dim is None:
        return _identified(model, draws), truth
    posterior = idata.posterior
    labelled = [name for name in model.param_names if model.label_dim in posterior[name].dims]
    if kind == "point":
        reference = {name: truth[name] for name in labelled}
        idata = relabel(idata, reference, model.label_dim, paired_dims=model.paired_label_dims)
        return {name: np.asarray(idata.posterior[name].values, float) for name in model.param_names}, truth
    # the truth rides along as one more draw of a single long chain, so that one relabelling
    # (its scales, measured over all draws) applies to it and to the draws alike
    import xarray as xr

    n_chain, n_draw = posterior.sizes["chain"], posterior.sizes["draw"]
    stacked = {}
    for name in model.param_names:
        values = draws[name].reshape((1, n_chain * n_draw) + draws[name].shape[2:])
        true_value = np.asarray(truth[name], float)[None, None]
        stacked[name] = (posterior[name].dims, np.concatenate([values, true_value], axis=1))
    reference = {name: draws[name][0, 0] for name in labelled}
    together = relabel(xr.DataTree.from_dict({"posterior": xr.Dataset(stacked)}), reference,
                       model.label_dim, paired_dims=model.paired_label_dims).posterior
    relabelled, pivoted_truth = {}, dict(truth)
    for name in model.param_names:
        values = np.asarray(together[name].values, float)
        relabelled[name] = values[0, :-1].reshape(draws[name].shape)
        pivoted_truth[name] = values[0, -1]
    return relabelled, pivoted_truth


def _simulate(job: _Job, index: int) -> dict:
    """Run simulation ``index`` (or load it from the cache): the record :class:`Calibration` keeps."""
    path = None if job.cache is None else Path(job.cache) / f"simulation-{index:05d}.pkl"
    if path is not None and path.is_file():
        try:
            with path.open("rb") as handle:
                record = pickle.load(handle)
            record["cached"] = True
            return record
        except (OSError, pickle.UnpicklingError, EOFError):
            pass  # a file cut short by an interruption: run the simulation again
    record = _run_simulation(job, index)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.part")
        with partial.open("wb") as handle:
            pickle.dump(record, handle)
        os.replace(partial, path)  # atomic: a file is either whole or absent
    record["cached"] = False
    return record


def _run_simulation(job: _Job, index: int) -> dict:
    from ..registry import fit
    from .sbc_ranks import rank_with_ties, thinning_stride

    if job.library == "pymc":
        import logging

        import pymc  # noqa: F401  PyMC sets its logger to INFO when imported: quieten it afterwards

        logging.getLogger("pymc").setLevel(logging.WARNING)
    model = job.model
    param_seed, data_seed, fit_seed, rank_seed = _seeds(job.random_seed, index)
    true_params = prior_draw(model, np.random.default_rng(param_seed))
    simulated = model.simulate(true_params, job.data_size, np.random.default_rng(data_seed))
    data = model.check_data(simulated[0] if isinstance(simulated, tuple) else simulated)
    truth = _identified(model, true_params)
    true_values = flatten_quantities(model, quantities(model, truth), 0)[job.keep]
    record = {"index": index, "truth": true_values, "error": "", "warnings": 0, "converged": False,
              "runtime_s": math.nan, "estimate": np.full(true_values.shape, np.nan), "rank": None,
              "n_ranked": 0, "stride": 1, "min_ess": math.nan, "inside_50": None, "inside_90": None,
              "khat": math.nan, "fit_seed": fit_seed}
    start = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            idata = fit(model, data, backend=job.backend, random_seed=fit_seed, **job.options)
    except Exception as error:  # one bad simulated data set is reported, not fatal for the run
        record["error"] = f"{type(error).__name__}: {error}"
        record["runtime_s"] = time.perf_counter() - start
        return record
    record["runtime_s"] = time.perf_counter() - start
    record["warnings"] = sum(1 for w in caught if issubclass(w.category, UserWarning | RuntimeWarning))
    record["converged"] = bool(idata.posterior.attrs.get("converged", 0))
    draws, truth = _posterior_draws(model, idata, truth, job.kind)
    flat = flatten_quantities(model, quantities(model, draws), 2)[..., job.keep]
    if model.label_dim is not None and job.kind != "point":
        # the truth in the pivot's labelling: bias, coverage and ranks all compare like with like
        true_values = flatten_quantities(model, quantities(model, truth), 0)[job.keep]
        record["truth"] = true_values
    record["estimate"] = flat.mean(axis=(0, 1))
    if job.kind == "point":
        return record
    n_chain, n_draw = flat.shape[:2]
    stride, min_ess = thinning_stride(flat) if job.kind == "sampler" else (1, math.nan)
    thinned = flat[:, ::stride].reshape(-1, flat.shape[-1])
    if model.label_dim is not None:
        thinned = thinned[1:]  # the pivot (chain 0, draw 0): its own labelling is trivially its own
    record.update(stride=stride, min_ess=min_ess, n_ranked=int(thinned.shape[0]),
                  rank=rank_with_ties(thinned, true_values, np.random.default_rng(rank_seed)))
    pooled = flat.reshape(n_chain * n_draw, -1)
    for level in (50, 90):
        low, high = np.quantile(pooled, [0.5 - level / 200, 0.5 + level / 200], axis=0)
        record[f"inside_{level}"] = (low <= true_values) & (true_values <= high)
    if job.kind == "variational":
        record["khat"] = _khat(model, data, idata, draws)
    return record




# -- the entry point --------------------------------------------------------------------------------
def _check_args(n_simulations, random_seed, n_jobs, alpha):
    if isinstance(n_simulations, bool) or not isinstance(n_simulations, numbers.Integral) or n_simulations < 2:
        raise ValueError(f"n_simulations must be an int >= 2, got {n_simulations!r}")
    if random_seed is not None and (isinstance(random_seed, bool) or not isinstance(random_seed, numbers.Integral)
                                    or not 0 <= random_seed < 2**63):
        raise ValueError(f"random_seed must be an int in [0, 2**63) or None, got {random_seed!r}")
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral) or n_jobs == 0):
        raise ValueError(f"n_jobs must be a non-zero int (-1: every core) or None, got {n_jobs!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 < alpha < 1:
        raise ValueError(f"alpha must be a number in (0, 1), got {alpha!r}")


def _cache_path(cache, key_parts) -> str | None:
    import joblib

    if cache is False:
        return None
    if cache is None or cache is True:
        base = cache_directory()
    else:
        try:
            base = Path(cache).expanduser()
        except TypeError:
            raise TypeError(
                f"cache must be None, True, False or a directory path, got {type(cache).__name__}"
            ) from None
    return str(base / joblib.hash(key_parts))


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def calibrate(model, backend: str, n_simulations: int = 100, data_size=None, random_seed: int | None = None,
              n_jobs: int | None = None, cache=None, progress: bool = True, alpha: float = DEFAULT_ALPHA,
              **options) -> Calibration:
    """Simulation-based calibration of one back-end on one model.

    Parameters
    ----------
    model : a latentzoo model (its ``prior()`` is drawn from)
    backend : str
        Any back-end that applies to the model (``"exact"``, ``"gibbs"``, ``"vb"``, ``"nuts"``,
        ``"em"``, ...), including ones registered at run time (with ``n_jobs=1``: worker processes
        know only the back-ends that importing latentzoo registers).
    n_simulations : int >= 2, default 100
    data_size : optional
        What ``model.simulate`` takes as ``size`` (trials, points, a sequence length or a list of
        lengths); default: the size of the model's example data.
    random_seed : int, optional
        Seeds everything; simulation ``i`` uses the ``i``-th child of this seed, so a run with more
        simulations repeats the first ones. None draws a seed (recorded in the result).
    n_jobs : int, optional
        Worker processes (joblib); None uses every available core, 1 runs in this process.
    cache : None, True, False or path
        Where finished simulations are kept (one file each, under a key of the model, back-end,
        options, size and seed): None/True the user cache directory (:func:`cache_directory`), a
        path that directory, False nowhere. A rerun with the same settings loads them.
    progress : bool, default True
        Show a progress bar.
    alpha : float, default 0.05
        Family-wise level of ``calibrated``: each of the ``n_tests`` tests (rank histogram, ECDF
        band, and VSBC for variational back-ends) of each of the ``n_rows`` rows is run at
        ``alpha / (n_tests * n_rows)`` (Bonferroni), so a calibrated back-end is flagged in at most
        ``alpha`` of runs.
    **options
        Options of the back-end (``draws=...``); ``progressbar`` is turned off, and PyMC back-ends
        run their chains one after the other in each worker (``cores=1``) unless told otherwise.

    Returns
    -------
    Calibration
    """
    _check_args(n_simulations, random_seed, n_jobs, alpha)
    model = _explicit_prior(model)
    spec = get_backend(model, backend)
    unknown = set(options) - set(spec.options)
    if unknown:
        raise ValueError(
            f"unknown option(s) {sorted(unknown)} for backend {backend!r}; valid options: {list(spec.options)}"
        )
    options = dict(options)
    if "progressbar" in spec.options:
        options["progressbar"] = False
    if "cores" in spec.options:
        options.setdefault("cores", 1)
    if data_size is None:
        data_size = default_data_size(model)
    if random_seed is None:
        random_seed = int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1))
    # a data set of this size, once, to check the size and to name the rows
    rng = np.random.default_rng(random_seed)
    try:
        example = model.simulate(prior_draw(model, rng), data_size, rng)
    except (TypeError, ValueError) as error:
        raise type(error)(
            f"data_size={data_size!r} is not a size {type(model).__name__}.simulate takes: {error}"
        ) from None
    example = model.check_data(example[0] if isinstance(example, tuple) else example)
    rows = quantity_spec(model, model.coords(example), rng)
    key = (_FORMAT, repr(model), backend, sorted(options.items()), repr(data_size), random_seed)
    if model.label_dim is not None:
        key += ("labels relabelled to a pivot draw",)  # earlier caches matched draws to the truth
    cache_path = _cache_path(cache, key)
    job = _Job(model, backend, spec.kind, spec.library, options, data_size, int(random_seed), rows.keep, cache_path)

    start = time.perf_counter()
    records = _run_all(job, n_simulations, n_jobs, progress)
    runtime = time.perf_counter() - start
    return build_result(job, rows, records, alpha, runtime, n_simulations)


def _run_all(job: _Job, n_simulations: int, n_jobs, progress: bool) -> list[dict]:
    from joblib import Parallel, delayed

    from ..progress import progress_bar

    n_jobs = available_cores() if n_jobs is None else n_jobs
    records = []
    description = f"SBC {job.backend}"
    with progress_bar(description, n_simulations, progress) as bar:
        if n_jobs == 1:
            results = (_simulate(job, index) for index in range(n_simulations))
        else:
            results = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
                delayed(_simulate)(job, index) for index in range(n_simulations)
            )
        for record in results:
            records.append(record)
            cached = sum(r["cached"] for r in records)
            failed = sum(bool(r["error"]) for r in records)
            bar.advance(1, status=f"{cached} from cache, {failed} failed" if cached or failed else "")
    return sorted(records, key=lambda record: record["index"])
