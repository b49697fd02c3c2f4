"""Label switching: relabel posterior draws by optimal matching to a reference.

Mixture components and HMM states are exchangeable: the likelihood (and, with symmetric priors,
the posterior) is unchanged when the labels are permuted. A sampler may therefore visit every
labelling, and two back-ends may report the same solution under different labels. Before
back-ends are compared, every draw is relabelled to the labelling closest to a reference (for
example the posterior means of the reference back-end): for each ``(chain, draw)`` the
permutation of the label coordinate that minimises the squared distance to the reference is
found by the Hungarian algorithm (``scipy.optimize.linear_sum_assignment``, as in Stephens 2000
and the ``label.switching`` R package's ECR-like algorithms), and applied to every posterior
variable carrying the label dim.

Example
-------
>>> from latentzoo.inference import fit                                   # doctest: +SKIP
>>> from latentzoo.inference.labels import reference_from, relabel        # doctest: +SKIP
>>> nuts = fit(gmm, data, backend="nuts")                                 # doctest: +SKIP
>>> em = fit(gmm, data, backend="em")                                     # doctest: +SKIP
>>> em = relabel(em, reference_from(nuts, "component"), "component")      # doctest: +SKIP
>>> em.posterior["label_permutation"]     # (chain, draw, component)     # doctest: +SKIP
"""

from __future__ import annotations

from collections import Counter

import numpy as np

__all__ = [
    "relabel",
    "relabel_self",
    "relabel_by_model",
    "reference_from",
    "labelled_names",
    "PERMUTATION_VAR",
    "SWAP_VAR",
]

#: name of the posterior variable recording the permutation applied to each draw
PERMUTATION_VAR = "label_permutation"

#: name of the posterior variable recording which draws a model's own identification rule changed
SWAP_VAR = "label_swapped"

_SAMPLE_DIMS = ("chain", "draw")


def labelled_names(model, dims: dict) -> list[str]:
    """The names in ``dims`` (name -> tuple of dims) that carry the model's ``label_dim``.

    Empty for a model without a ``label_dim``.
    """
    label_dim = model.label_dim
    if label_dim is None:
        return []
    return [name for name, name_dims in dims.items() if label_dim in name_dims]


def relabel_by_model(model, data, idata):
    """Apply the model's own identification rule (``model.relabel_draws``), if it has one.

    Some symmetries do not live on a label dim: the three coins' (pi, p, q) -> (1 - pi, q, p)
    swaps two scalar parameters. Such a model identifies its labels by an ordering rule; the
    posterior group is rebuilt from the relabelled parameters (derived quantities and latent
    posteriors follow) and a boolean ``label_swapped`` (chain, draw) records what changed.

    Returns a shallow copy; the input is returned unchanged for models without the hook.
    """
    from ..models.core.protocols import IdentificationRule

    if not isinstance(model, IdentificationRule):
        return idata
    from .core import make_dataset, posterior_values

    posterior = idata.posterior.to_dataset()
    draws = {name: posterior[name].values for name in model.param_names}
    relabelled, swapped = model.relabel_draws(draws)
    values, dims = posterior_values(model, model.check_data(data), relabelled)
    values[SWAP_VAR] = swapped
    coords = {name: coord.values for name, coord in posterior.coords.items()}
    new_posterior = make_dataset(values, dims, coords)
    new_posterior.attrs.update(posterior.attrs)
    new_posterior.attrs["relabel_fraction_swapped"] = float(np.mean(swapped))
    result = idata.copy(deep=False)
    result["posterior"] = new_posterior
    return result


def _check_dims(label_dim, paired_dims) -> dict[str, str]:
    if not isinstance(label_dim, str):
        raise TypeError(f"label_dim must be a str or None, got {type(label_dim).__name__} {label_dim!r}")
    if paired_dims is None:
        return {}
    if not isinstance(paired_dims, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in paired_dims.items()
    ):
        raise TypeError(f"paired_dims must be a dict of str -> str, got {paired_dims!r}")
    wrong = {key: value for key, value in paired_dims.items() if value != label_dim}
    if wrong:
        raise ValueError(
            f"paired_dims must map dims to label_dim {label_dim!r} (e.g. {{'state_next': {label_dim!r}}}), "
            f"got {wrong}"
        )
    return dict(paired_dims)


def _labelled_variables(posterior, label_dim: str, paired: dict[str, str]) -> list[str]:
    """Posterior variables carrying ``label_dim`` or a dim paired with it (not the permutation)."""
    label_like = {label_dim, *paired}
    return [
        name
        for name, variable in posterior.data_vars.items()
        if name != PERMUTATION_VAR and label_like & set(variable.dims)
    ]


def reference_from(idata, label_dim: str | None, variables=None, paired_dims: dict | None = None) -> dict:
    """Posterior means of the variables carrying ``label_dim``, for use as a :func:`relabel` reference.

    Parameters
    ----------
    idata : xarray.DataTree
        Typically the reference back-end's result (exact draws or NUTS).
    label_dim : str or None
        The exchangeable dim (``model.label_dim``). None gives an empty dict.
    variables : iterable of str, optional
        Restrict to these posterior variables (for example the model's parameters, leaving out
        large per-observation latent posteriors). Default: every variable carrying the dim.
    paired_dims : dict of str -> str, optional
        Dims that index the same labels a second time (``{"state_next": "state"}``); variables
        carrying only such a dim are included too.

    Returns
    -------
    dict of str -> ndarray of shape (*variable_shape,)
        The mean over ``chain`` and ``draw`` of each variable, with its remaining dims in the
        posterior's order.
    """
    if label_dim is None:
        return {}
    paired = _check_dims(label_dim, paired_dims)
    posterior = idata.posterior.to_dataset()
    names = [name for name in _labelled_variables(posterior, label_dim, paired) if label_dim in posterior[name].dims]
    if variables is not None:
        wanted = list(variables)
        names = [name for name in names if name in wanted]
    if not names:
        raise ValueError(
            f"no posterior variable carries label_dim {label_dim!r}; variables: {list(posterior.data_vars)}"
        )
    return {name: np.asarray(posterior[name].mean(dim=_SAMPLE_DIMS).values, float) for name in names}


def relabel(idata, reference: dict | None, label_dim: str | None, paired_dims: dict | None = None):
    """Relabel every draw to the permutation of ``label_dim`` closest to ``reference``.

    For draw ``s`` and candidate assignment of sample label ``j`` to reference label ``k``, the
    cost is

        C_s[j, k] = sum_v || x_v[s, j] - r_v[k] ||^2 / (n_v * scale_v)

    over the variables ``v`` present in ``reference`` that carry ``label_dim``, where ``n_v`` is
    the number of elements per label and ``scale_v`` the variable's posterior variance within a
    label (so that a variable measured in large units, or with many elements, does not decide
    alone, and a variable counts by how far apart it puts the labels in units of its own
    uncertainty). The Hungarian algorithm gives the permutation minimising
    ``sum_j C_s[j, perm(j)]``. The within-label variance needs a labelling: a first pass scales
    by the variance over draws and labels, and its labelling gives the variances of the second.

    Variables whose label dim appears twice (an HMM transition matrix ``(state, state_next)``,
    declared with ``paired_dims={"state_next": "state"}``) are permuted along both axes. Their
    cost term uses only the entries whose position depends on the row's own label alone, the
    diagonal ``x[s, j, j]`` versus ``r[k, k]``; the off-diagonal entries depend on the whole
    permutation, which would make the assignment problem quadratic.

    Parameters
    ----------
    idata : xarray.DataTree
        Its ``posterior`` group is relabelled; other groups are shared with the result
        (the pointwise log-likelihood and observed data do not depend on labels).
    reference : dict of str -> array-like of shape (*variable_shape,)
        Reference values without ``chain``/``draw`` dims, dims in the posterior's order, for
        example :func:`reference_from` of a reference back-end. At least one entry must carry
        ``label_dim``. Variables not in ``reference`` are permuted but do not enter the cost.
    label_dim : str or None
        The exchangeable dim. None returns ``idata`` unchanged (models without exchangeable
        labels, e.g. ``ThreeCoins``).
    paired_dims : dict of str -> str, optional
        Other dims indexing the same labels, mapped to ``label_dim``.

    Returns
    -------
    xarray.DataTree
        A new object whose posterior has every labelled variable permuted and a variable
        ``label_permutation`` of shape (chain, draw, n_labels): entry ``[c, d, k]`` is the
        original label now called ``k``. If ``idata`` was relabelled before, the permutations
        compose, so it still refers to the back-end's original labels. The posterior attrs gain
        ``relabel_label_dim``, ``relabel_fraction_permuted`` (share of draws not left as they
        were by this call) and ``relabel_permutation_counts``.

    Raises
    ------
    ValueError
        If no posterior variable carries ``label_dim``, a reference entry is unknown, does not
        carry the dim or has the wrong shape.
    """
    if label_dim is None:
        return idata
    paired = _check_dims(label_dim, paired_dims)
    if not isinstance(reference, dict) or not reference:
        raise TypeError(f"reference must be a non-empty dict of variable name -> array, got {reference!r}")
    posterior = idata.posterior.to_dataset()
    labelled = _labelled_variables(posterior, label_dim, paired)
    if not labelled:
        raise ValueError(
            f"no posterior variable carries label_dim {label_dim!r}; variables: {list(posterior.data_vars)}"
        )
    unknown = set(reference) - set(labelled)
    if unknown:
        raise ValueError(
            f"reference has variables {sorted(unknown)} that are not posterior variables carrying "
            f"{label_dim!r}; usable: {labelled}"
        )
    n_labels = posterior.sizes[label_dim]
    n_chain, n_draw = posterior.sizes["chain"], posterior.sizes["draw"]

    pieces = []
    for name, target in reference.items():
        values, target = _label_first(posterior[name], target, label_dim, paired, name)
        # values (chain, draw, K, rest...), target (K, rest...), flattened over rest
        pieces.append((values.reshape(n_chain, n_draw, n_labels, -1), target.reshape(n_labels, -1)))
    # first pass: each variable scaled by its spread over draws and labels; that spread includes
    # the distance between labels, which shrinks the variables that separate the labels best
    # (component means) against those that barely do (the weights of equal-sized clusters),
    # so a second pass rescales by the posterior spread within a label, measured on the
    # first pass's labelling
    permutation = _best_permutations(pieces, [_scale(values, values) for values, _ in pieces])
    within = [_scale(values, _permute_axis(values, permutation, 2), per_label=True) for values, _ in pieces]
    permutation = _best_permutations(pieces, within)

    new_posterior = posterior.copy()
    for name in labelled:
        variable = posterior[name]
        array = np.asarray(variable.values)
        for axis, dim in enumerate(variable.dims):
            if dim == label_dim or dim in paired:
                array = _permute_axis(array, permutation, axis)
        new_posterior[name] = (variable.dims, array)

    identity = np.arange(n_labels)
    previous = posterior.get(PERMUTATION_VAR)
    total = permutation if previous is None else np.take_along_axis(np.asarray(previous.values), permutation, axis=-1)
    new_posterior[PERMUTATION_VAR] = (_SAMPLE_DIMS + (label_dim,), total.astype(np.int64))
    counts = Counter(tuple(int(i) for i in row) for row in total.reshape(-1, n_labels))
    new_posterior.attrs = {
        **posterior.attrs,
        "relabel_label_dim": label_dim,
        "relabel_fraction_permuted": float(np.mean(np.any(permutation != identity, axis=-1))),
        "relabel_permutation_counts": repr(dict(counts.most_common())),
    }

    # a shallow copy: the other groups are shared, only the posterior is replaced
    result = idata.copy(deep=False)
    result["posterior"] = new_posterior
    return result


def _scale(values: np.ndarray, labelled: np.ndarray, per_label: bool = False) -> float:
    """A variable's squared-distance unit: the variance of ``labelled`` (chain, draw, K, n)
    over draws and labels, or (``per_label``) over draws within each label, averaged."""
    if not values.size:
        return 1.0
    axes = (0, 1) if per_label else (0, 1, 2)
    scale = float(np.nanmean(np.nanvar(labelled, axis=axes)))
    # a point estimate with equal entries (mixture weights of equal-sized clusters) has a
    # variance of round-off size; dividing by it would let round-off decide the labels
    scale = max(scale, 1e-8 * float(np.nanmean(values**2)))
    return scale if np.isfinite(scale) and scale > 0 else 1.0


def _best_permutations(pieces, scales) -> np.ndarray:
    """Per draw, the permutation minimising the scaled squared distance to the reference.

    Returns
    -------
    ndarray of shape (chain, draw, K): entry ``k`` is the sample label now called ``k``.
    """
    from scipy.optimize import linear_sum_assignment

    n_chain, n_draw, n_labels = pieces[0][0].shape[:3]
    cost = np.zeros((n_chain, n_draw, n_labels, n_labels))
    for (values, target), scale in zip(pieces, scales):
        difference = values[:, :, :, None, :] - target[None, None, None, :, :]
        cost += np.nansum(difference**2, axis=-1) / (values.shape[-1] * scale)
    # linear_sum_assignment has no batch form; K is small, so a loop over draws is cheap
    flat_cost = cost.reshape(-1, n_labels, n_labels)
    assignment = np.empty((flat_cost.shape[0], n_labels), dtype=np.int64)
    for index, matrix in enumerate(flat_cost):
        _, assignment[index] = linear_sum_assignment(matrix)
    # sample label j goes to reference label assignment[j]; new label k was old label perm[k]
    return np.argsort(assignment, axis=-1).reshape(n_chain, n_draw, n_labels)


def _label_first(variable, target, label_dim, paired, name):
    """Values of shape (chain, draw, K, ...) and target (K, ...), label axis first.

    For a paired variable, the diagonal over (label_dim, paired dim) is taken instead, so the
    remaining entries are those whose position follows from the row's own label.
    """
    dims = tuple(variable.dims)
    target = np.asarray(target, float)
    expected = tuple(variable.shape[2:])
    if dims[:2] != _SAMPLE_DIMS:
        raise ValueError(f"posterior variable {name!r} must have dims (chain, draw, ...), got {dims}")
    if target.shape != expected:
        raise ValueError(
            f"reference[{name!r}] must have shape {expected} (dims {dims[2:]}), got {target.shape}"
        )
    values = np.asarray(variable.values, float)
    if label_dim not in dims:
        raise ValueError(f"reference[{name!r}] must carry label_dim {label_dim!r}, its dims are {dims}")
    inner = list(dims[2:])
    label_axis = inner.index(label_dim)
    paired_axes = [axis for axis, dim in enumerate(inner) if dim in paired]
    if paired_axes:
        # diagonal over the label axis and its first paired axis; numpy puts it last
        other = paired_axes[0]
        target = np.diagonal(target, axis1=label_axis, axis2=other)
        values = np.diagonal(values, axis1=label_axis + 2, axis2=other + 2)
        return np.moveaxis(values, -1, 2), np.moveaxis(target, -1, 0)
    return np.moveaxis(values, label_axis + 2, 2), np.moveaxis(target, label_axis, 0)


def _permute_axis(array: np.ndarray, permutation: np.ndarray, axis: int) -> np.ndarray:
    """``out[c, d, ..., k, ...] = array[c, d, ..., permutation[c, d, k], ...]`` along ``axis``."""
    shape = [1] * array.ndim
    shape[0], shape[1], shape[axis] = permutation.shape
    # take_along_axis broadcasts the index over the other axes
    index = permutation.reshape(shape)
    return np.take_along_axis(array, index, axis=axis)


def relabel_self(idata, label_dim: str | None, variables=None, paired_dims: dict | None = None, max_iter: int = 20):
    """Relabel draws to their own posterior mean, iterating until the labelling settles.

    The mean of draws that switch labels mixes the components, so it is a poor reference. This
    starts from a single draw (the last draw of chain 0, one consistent labelling), relabels
    every draw to it, and then alternates "reference = mean of the relabelled draws" and
    "relabel to the reference" until no permutation changes (Stephens 2000, Algorithm 2, with a
    squared-distance loss).

    Parameters
    ----------
    idata : xarray.DataTree
    label_dim : str or None
        None returns ``idata`` unchanged.
    variables : iterable of str, optional
        Posterior variables used for the matching (default: all carrying ``label_dim``).
    paired_dims : dict of str -> str, optional
        As for :func:`relabel`.
    max_iter : int, default 20

    Returns
    -------
    xarray.DataTree
        As from :func:`relabel`; ``label_permutation`` refers to the original labels.
    """
    if label_dim is None:
        return idata
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be an int >= 1, got {max_iter!r}")
    names = reference_from(idata, label_dim, variables=variables, paired_dims=paired_dims).keys()
    posterior = idata.posterior.to_dataset()
    reference = {name: np.asarray(posterior[name].isel(chain=0, draw=-1).values, float) for name in names}
    current = relabel(idata, reference, label_dim, paired_dims=paired_dims)
    for _ in range(max_iter):
        reference = reference_from(current, label_dim, variables=names, paired_dims=paired_dims)
        updated = relabel(current, reference, label_dim, paired_dims=paired_dims)
        settled = updated.posterior.attrs["relabel_fraction_permuted"] == 0.0
        current = updated
        if settled:
            break
    return current
