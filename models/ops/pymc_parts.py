"""PyMC building blocks that PyMC itself lacks: an exact, batched Inverse-Wishart.

``inverse_wishart(name, nu, scale, dims=...)`` registers ``Sigma ~ IW(nu, scale)`` (one matrix,
or one per leading index of ``scale``) in the current ``pm.Model`` and returns ``Sigma`` and
its lower Cholesky factor for ``pm.MvNormal(..., chol=chol)``.

How it is declared, and why
---------------------------
* The random variable is ``Sigma`` itself, a ``pm.CustomDist`` whose log-density is the exact
  log IW(Sigma | nu, S), so ``find_MAP`` (which leaves transform Jacobians out) finds the mode
  in Sigma, and a ``start``/``initval`` is given as a covariance matrix.
* NUTS and ADVI move on an unconstrained vector z through :class:`SPDCholeskyTransform`
  (log-Cholesky: the lower triangle of L row by row, log of its diagonal), with its exact
  log-Jacobian; that is the only place the Jacobian lives.
* The transform's backward map builds L as a broadcast product-sum against a constant 0/1
  placement array (no indexing Ops, whose gradients run in Python, and no reshape to a computed
  shape, which JAX cannot compile) and tags it lower triangular. PyTensor's
  ``cholesky_ldotlt`` rewrite then replaces ``cholesky(L @ L.T)`` by L, so neither the IW
  log-density nor an ``MvNormal(chol=...)`` built on the returned ``chol`` ever factorises
  Sigma again.
"""

from __future__ import annotations

import functools
import numbers

import numpy as np
from scipy import special

__all__ = [
    "inverse_wishart",
    "inverse_wishart_logp",
    "lower_triangular_inverse",
    "mvnormal",
    "mvnormal_logp",
    "SPDCholeskyTransform",
    "spd_log_jacobian_coefficients",
]


def spd_log_jacobian_coefficients(dim: int) -> np.ndarray:
    """Coefficients c of log|d vech(Sigma) / d z| = D log 2 + c . z for the log-Cholesky map.

    z packs the lower triangle of the Cholesky factor L row by row (``numpy.tril_indices``),
    with log L_kk on the diagonal. |d vech(L L^T) / d vech(L)| = 2^D prod_k L_kk^{D - k + 1}
    (k = 1..D) and d L_kk / d z = L_kk, so the diagonal entry k carries D - k + 2 (k = 1..D),
    off-diagonal entries 0.

    Returns
    -------
    ndarray of shape (D (D + 1) / 2,)
    """
    rows, cols = np.tril_indices(dim)
    return np.where(rows == cols, dim - rows + 1.0, 0.0)


def _scatter_matrix(dim: int) -> np.ndarray:
    """(D (D + 1) / 2, D * D) 0/1 matrix E with vec(L) = packed(L) @ E (row-major vec)."""
    rows, cols = np.tril_indices(dim)
    scatter = np.zeros((rows.size, dim * dim))
    scatter[np.arange(rows.size), rows * dim + cols] = 1.0
    return scatter


@functools.lru_cache(maxsize=None)
def _transform_class():
    """Build the PyMC transform class lazily (PyMC is imported only when a model is declared)."""
    import pytensor.tensor as pt
    from pymc.logprob.transforms import Transform

    class _SPDCholeskyTransform(Transform):
        name = "log_cholesky"

        def __init__(self, dim: int):
            self.dim = dim
            rows, cols = np.tril_indices(dim)
            self.is_diagonal = rows == cols
            self.flat_index = rows * dim + cols
            self.placement = _scatter_matrix(dim).reshape(-1, dim, dim)
            self.jacobian_coefficients = spd_log_jacobian_coefficients(dim)

        def lower(self, value):
            """z (..., M) -> L (..., D, D), tagged lower triangular for PyTensor's rewrites."""
            entries = pt.where(self.is_diagonal, pt.exp(value), value)
            # a broadcast product-sum against the (M, D, D) 0/1 placement, not a dot and a
            # reshape: a reshape to a shape computed from value.shape has no JAX translation
            # (JAX needs static shapes), and this is as cheap for the small D of a covariance
            chol = pt.sum(entries[..., :, None, None] * self.placement, axis=-3)
            chol.tag.lower_triangular = True
            return chol

        def forward(self, value, *inputs):
            chol = pt.linalg.cholesky(value)
            flat = chol.reshape(pt.concatenate([chol.shape[:-2], [self.dim * self.dim]]), ndim=chol.ndim - 1)
            entries = pt.take(flat, self.flat_index, axis=-1)
            return pt.where(self.is_diagonal, pt.log(pt.where(self.is_diagonal, entries, 1.0)), entries)

        def backward(self, value, *inputs):
            chol = self.lower(value)
            return chol @ chol.mT

        def log_jac_det(self, value, *inputs):
            return pt.sum(self.jacobian_coefficients * value, axis=-1) + self.dim * np.log(2.0)

    return _SPDCholeskyTransform


def SPDCholeskyTransform(dim: int):
    """The log-Cholesky transform of (..., dim, dim) SPD matrices to R^{dim (dim + 1) / 2} (PyMC).

    Batched over leading axes; ``log_jac_det`` returns one value per matrix.
    """
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or dim < 1:
        raise ValueError(f"dim must be a positive int, got {dim!r}")
    return _transform_class()(int(dim))


def _check_iw_parameters(nu, scale) -> tuple[float, np.ndarray]:
    if isinstance(nu, bool) or not isinstance(nu, numbers.Real):
        raise TypeError(f"nu must be a real number (degrees of freedom), got {type(nu).__name__} {nu!r}")
    if isinstance(scale, str | bytes):
        raise TypeError(f"scale must be a (D, D) or (K, D, D) array of numbers, got {type(scale).__name__}")
    try:
        scale = np.array(scale, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"scale must be a (D, D) or (K, D, D) array of numbers, got {type(scale).__name__}") from None
    if scale.ndim < 2 or scale.shape[-1] != scale.shape[-2] or scale.shape[-1] == 0:
        raise ValueError(f"scale must have shape (D, D) or (K, D, D), got {scale.shape}")
    dim = scale.shape[-1]
    nu = float(nu)
    if not np.isfinite(nu) or nu <= dim - 1:
        raise ValueError(f"nu must be a finite number > D - 1 = {dim - 1} (D = {dim}), got {nu}")
    if not np.all(np.isfinite(scale)):
        raise ValueError("scale must be finite")
    size = max(float(np.max(np.abs(scale))), np.finfo(float).tiny)
    if not np.allclose(scale, np.swapaxes(scale, -1, -2), rtol=0, atol=1e-10 * size):
        raise ValueError("scale must be symmetric")
    scale = 0.5 * (scale + np.swapaxes(scale, -1, -2))
    try:
        np.linalg.cholesky(scale)
    except np.linalg.LinAlgError:
        raise ValueError(
            f"scale must be positive definite; smallest eigenvalue {float(np.linalg.eigvalsh(scale).min()):.3g}"
        ) from None
    return nu, scale


#: up to this D, triangular inverses are unrolled into compiled (C) PyTensor Ops; above it
#: they go through SciPy's solve_triangular (a Python Op, whose per-call cost dominates at small D)
UNROLL_MAX_DIM = 8


def _static_dim(chol) -> int | None:
    dim = chol.type.shape[-1]
    return int(dim) if dim is not None else None


def lower_triangular_inverse(chol):
    """L^{-1} of lower-triangular matrices (..., D, D) with a positive diagonal.

    For D <= ``UNROLL_MAX_DIM`` (known statically) the forward substitution is written out
    row by row, so the compiled function and its gradient are elementwise C Ops with no
    Python-level linear-algebra call; otherwise ``solve_triangular(L, I)``.
    """
    import pytensor.tensor as pt

    dim = _static_dim(chol)
    if dim is None or dim > UNROLL_MAX_DIM:
        dim = dim if dim is not None else chol.shape[-1]
        return pt.linalg.solve_triangular(chol, pt.eye(dim), lower=True, b_ndim=2)
    identity = np.eye(dim)
    rows = []
    for i in range(dim):
        row = identity[i]
        for k in range(i):
            row = row - chol[..., i, k, None] * rows[k]
        rows.append(row / chol[..., i, i, None])
    return pt.stack(rows, axis=-2)


def _broadcast_matmul(a, b):
    """a @ b for stacks of small matrices (..., D, D), as a broadcast product-sum: elementwise
    C Ops whose gradients are elementwise too (no Python-level linear algebra)."""
    import pytensor.tensor as pt

    return pt.sum(a[..., :, :, None] * b[..., None, :, :], axis=-2)


@functools.lru_cache(maxsize=None)
def _spd_cholesky_op():
    """Build the SPDCholesky Op and register its rewrite lazily (PyTensor is imported on use)."""
    import pytensor.tensor as pt
    from pytensor.graph.basic import Apply
    from pytensor.graph.op import Op
    from pytensor.graph.rewriting.basic import node_rewriter
    from pytensor.tensor.elemwise import DimShuffle
    from pytensor.tensor.math import Dot, _matmul
    from pytensor.tensor.rewriting.basic import register_canonicalize, register_stabilize

    class SPDCholesky(Op):
        """Lower Cholesky factors of stacked SPD matrices (..., D, D).

        Not a Blockwise: PyTensor's batched Cholesky builds its gradient through Blockwise,
        whose symbolic set-up cost 5 s per gradient for the GMM's (K, D, D) covariances. This
        Op's gradient is a few broadcast products, and a rewrite replaces
        ``SPDCholesky(L @ L.mT)`` by ``L`` for L tagged lower triangular (the log-Cholesky
        transform's output), so compiled models never run it.
        """

        __props__ = ()

        def make_node(self, x):
            x = pt.as_tensor_variable(x)
            if x.ndim < 2:
                raise TypeError(f"SPDCholesky needs (..., D, D) matrices, got {x.ndim} dimensions")
            return Apply(self, [x], [x.type()])

        def perform(self, node, inputs, outputs):
            try:
                chol = np.linalg.cholesky(inputs[0])
            except np.linalg.LinAlgError:
                # not positive definite (a rejected proposal): NaN makes the log-density -inf/NaN
                chol = np.full_like(inputs[0], np.nan)
            outputs[0][0] = chol

        def infer_shape(self, node, shapes):
            return shapes

        def pullback(self, inputs, outputs, output_grads):
            # Murray (2016), "Differentiation of the Cholesky decomposition", eq. for the lower
            # factor: S = L^{-T} Phi(L^T dL) L^{-1}, and the gradient on the lower triangle is
            # tril(S + S^T) - diag(S) (the factorisation reads the lower triangle only)
            (chol,) = outputs
            (grad_chol,) = output_grads
            dim = _static_dim(chol)
            if dim is None:
                raise ValueError("SPDCholesky's gradient needs a static matrix size D")
            inverse = lower_triangular_inverse(chol)
            phi = np.tril(np.ones((dim, dim))) - 0.5 * np.eye(dim)
            middle = phi * _broadcast_matmul(chol.mT, grad_chol)
            s = _broadcast_matmul(inverse.mT, _broadcast_matmul(middle, inverse))
            strictly_lower = np.tril(np.ones((dim, dim)), -1)
            return [strictly_lower * (s + s.mT) + np.eye(dim) * s]

    from .numba_dispatch import register_numba_impl

    register_numba_impl(SPDCholesky, _build_spd_cholesky_numba, _lower_cholesky_or_nan)
    op = SPDCholesky()

    @register_canonicalize
    @register_stabilize
    @node_rewriter([SPDCholesky])
    def spd_cholesky_of_llt(fgraph, node):
        """SPDCholesky(L @ L.mT) -> L when L is tagged lower triangular."""
        product = node.inputs[0]
        if product.owner is None or not (isinstance(product.owner.op, Dot) or product.owner.op == _matmul):
            return None
        left, right = product.owner.inputs
        transposes_left = (
            right.owner is not None
            and isinstance(right.owner.op, DimShuffle)
            and right.owner.op.is_matrix_transpose
            and right.owner.inputs[0] == left
        )
        if getattr(left.tag, "lower_triangular", False) and transposes_left:
            return [left]
        return None

    return op


def _lower_cholesky_or_nan(matrix, out):
    """Cholesky-Banachiewicz factorisation of one small SPD matrix into ``out`` (lower
    triangle; NaN everywhere when a pivot is not positive, as the Python ``perform`` does)."""
    dim = matrix.shape[0]
    out[:, :] = 0.0
    for row in range(dim):
        for col in range(row + 1):
            total = matrix[row, col]
            for k in range(col):
                total -= out[row, k] * out[col, k]
            if row == col:
                if not total > 0.0:
                    out[:, :] = np.nan
                    return
                out[row, row] = np.sqrt(total)
            else:
                out[row, col] = total / out[col, col]


def _build_spd_cholesky_numba(op, node):
    from numba import njit

    factor = njit(_lower_cholesky_or_nan)

    @njit
    def spd_cholesky_numba(matrices):
        dim = matrices.shape[-1]
        flat = np.ascontiguousarray(matrices).reshape((-1, dim, dim))
        out = np.empty_like(flat)
        for index in range(flat.shape[0]):
            factor(flat[index], out[index])
        return out.reshape(matrices.shape)

    return spd_cholesky_numba


def spd_cholesky(matrices):
    """Lower Cholesky factor of SPD matrices (..., D, D) with a cheap symbolic gradient.

    Equals ``pt.linalg.cholesky`` in value; see :func:`_spd_cholesky_op` for why it exists.
    The matrix size D must be known statically.
    """
    return _spd_cholesky_op()(matrices)


def _log_diagonal_sum(chol, dim: int):
    # sum_k log L_kk; the diagonal by a product with the identity, because ExtractDiag's
    # gradient (AllocDiag) runs in Python
    import pytensor.tensor as pt

    return pt.sum(pt.log(pt.sum(chol * np.eye(dim), axis=-1)), axis=-1)


def mvnormal_logp(value, mu, chol):
    """log N(value | mu, L L^T) for a lower Cholesky factor L with a positive diagonal.

    The same density as ``pm.MvNormal(mu, chol=chol)``, written so that a compiled model never
    factorises L L^T again and (for D <= ``UNROLL_MAX_DIM``) calls no Python-level linear
    algebra; use it as the ``logp`` of a ``pm.CustomDist`` (see :func:`mvnormal`).

    Parameters
    ----------
    value : TensorVariable of shape (..., D)
    mu : TensorVariable of shape (..., D)
    chol : TensorVariable of shape (..., D, D)
        Batch axes broadcast against those of ``value`` and ``mu``.

    Returns
    -------
    TensorVariable of shape (...), one log-density per vector
    """
    import pytensor.tensor as pt

    dim = _static_dim(chol)
    if dim is None:
        raise ValueError("chol must have a static last dimension D (a constant shape)")
    inverse = lower_triangular_inverse(chol)
    # whitened residuals L^{-1} (x - mu), as a broadcast product: no per-observation matmul Op
    whitened = pt.sum(inverse * (value - mu)[..., None, :], axis=-1)
    return -0.5 * dim * np.log(2.0 * np.pi) - _log_diagonal_sum(chol, dim) - 0.5 * pt.sum(whitened**2, axis=-1)


def _mvnormal_random(mu, chol, rng=None, size=None):
    mu, chol = np.asarray(mu), np.asarray(chol)
    if size is None:
        shape = np.broadcast_shapes(mu.shape[:-1], chol.shape[:-2])
    else:
        shape = tuple(int(n) for n in np.atleast_1d(size))
    noise = rng.standard_normal((*shape, mu.shape[-1]))
    return mu + np.einsum("...ij,...j->...i", chol, noise)


def _mvnormal_support_point(rv, size, mu, chol):
    import pytensor.tensor as pt

    return pt.full_like(rv, 0.0) + mu


def mvnormal(name: str, mu, chol, **kwargs):
    """``pm.CustomDist`` multivariate normal N(mu, chol chol^T) with :func:`mvnormal_logp`.

    A drop-in for ``pm.MvNormal(name, mu, chol=chol, **kwargs)`` (``observed``, ``dims``,
    ``shape`` pass through; prior and posterior predictive draws work) whose compiled
    log-density and gradient avoid the re-factorisation and the Python linear-algebra Ops of
    ``pm.MvNormal``. ``chol`` must be lower triangular with a positive diagonal.
    """
    import pymc as pm

    return pm.CustomDist(
        name,
        mu,
        chol,
        logp=mvnormal_logp,
        random=_mvnormal_random,
        support_point=_mvnormal_support_point,
        signature="(d),(d,d)->(d)",
        **kwargs,
    )


def inverse_wishart_logp(value, nu: float, scale: np.ndarray):
    """log IW(value | nu, scale) as a PyTensor expression, one value per matrix.

    Parameters
    ----------
    value : TensorVariable of shape (..., D, D)
        Symmetric positive-definite matrices.
    nu : float
        Degrees of freedom (> D - 1).
    scale : ndarray of shape (..., D, D)
        Scale matrices, broadcast against ``value``.

    Returns
    -------
    TensorVariable of shape (...)

    Notes
    -----
    log IW = nu/2 log|S| - nu D/2 log 2 - log Gamma_D(nu/2) - (nu + D + 1)/2 log|Sigma|
    - 1/2 tr(S Sigma^{-1}), with tr(S Sigma^{-1}) = ||L^{-1} C||_F^2 for Sigma = L L^T, S = C C^T.
    Under the log-Cholesky transform PyTensor rewrites ``cholesky(value)`` to the transform's L.
    """
    nu, scale = _check_iw_parameters(nu, scale)
    scale_chol, log_norm = _iw_constants(nu, scale)
    return _iw_logp_from_constants(value, nu, scale_chol, log_norm, scale.shape[-1])


def _iw_constants(nu: float, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Cholesky factor C of the scale (..., D, D) and the normalising constant (...) of
    log IW: what depends on the hyperparameters only, computed once in NumPy."""
    dim = scale.shape[-1]
    scale_chol = np.linalg.cholesky(scale)
    log_det_scale = 2.0 * np.log(np.diagonal(scale_chol, axis1=-2, axis2=-1)).sum(-1)
    log_norm = 0.5 * nu * log_det_scale - 0.5 * nu * dim * np.log(2.0) - special.multigammaln(nu / 2.0, dim)
    return scale_chol, np.asarray(log_norm, np.float64)


def _iw_logp_from_constants(value, nu, scale_chol, log_norm, dim: int):
    """log IW(value | nu, C C^T) given C and the normalising constant, which may be numbers or
    symbolic (data containers)."""
    import pytensor.tensor as pt

    chol = pt.specify_shape(spd_cholesky(value), (*(None,) * (value.ndim - 2), dim, dim))
    inverse = lower_triangular_inverse(chol)
    # ||L^{-1} C||_F^2 as a broadcast product-sum (C Ops, batched over components)
    solved = _broadcast_matmul(inverse, scale_chol)
    return log_norm - (nu + dim + 1.0) * _log_diagonal_sum(chol, dim) - 0.5 * pt.sum(solved**2, axis=(-2, -1))


def inverse_wishart(name: str, nu, scale, *, dims=None):
    """Register ``name ~ InverseWishart(nu, scale)`` in the current PyMC model.

    Parameters
    ----------
    name : str
        Name of the random variable (the covariance matrices themselves).
    nu : float
        Degrees of freedom, > D - 1 (> D + 1 for the mean to exist), shared by the batch.
    scale : array-like of shape (D, D) or (K, D, D)
        Symmetric positive-definite scale matrices; a leading axis declares K independent
        Inverse-Wisharts, one per index.
    dims : str or tuple of str, optional
        PyMC dims of ``Sigma``, e.g. ``("feature", "feature_bis")`` or
        ``("component", "feature", "feature_bis")``.

    Returns
    -------
    Sigma : TensorVariable of shape (..., D, D)
        The random variable; its log-density equals ``scipy.stats.invwishart.logpdf``.
    chol : TensorVariable of shape (..., D, D)
        Its lower Cholesky factor, for ``pm.MvNormal(..., chol=chol)``; in compiled model
        functions it is the transform's L (no factorisation is computed).

    Notes
    -----
    The initial value is the mode S / (nu + D + 1). NUTS and ADVI sample the log-Cholesky
    vector with the transform's Jacobian; ``pm.find_MAP`` leaves the Jacobian out and so
    maximises the density of Sigma itself.

    Examples
    --------
    >>> import numpy as np, pymc as pm
    >>> with pm.Model(coords={"component": [0, 1], "feature": [0, 1], "feature_bis": [0, 1]}):
    ...     covs, chol = inverse_wishart("covs", 4.0, np.stack([np.eye(2)] * 2),
    ...                                  dims=("component", "feature", "feature_bis"))
    """
    import pymc as pm
    import pytensor.tensor as pt

    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    nu, scale = _check_iw_parameters(nu, scale)
    dim = scale.shape[-1]
    scale_chol, log_norm = _iw_constants(nu, scale)
    # data containers, not constants: the compiled model then depends on the shapes only, so a
    # data-driven prior (a new S for every data set) reuses the compiled code (models/ops/pymc_data.py)
    nu_data = pm.Data(f"{name}_nu", np.float64(nu))
    scale_chol_data = pm.Data(f"{name}_scale_chol", scale_chol, shape=scale.shape)
    log_norm_data = pm.Data(f"{name}_log_norm", log_norm, shape=log_norm.shape)

    def logp(value, nu_, scale_chol_, log_norm_):
        return _iw_logp_from_constants(value, nu_, scale_chol_, log_norm_, dim)

    Sigma = pm.CustomDist(
        name,
        nu_data,
        scale_chol_data,
        log_norm_data,
        logp=logp,
        signature="(),(d,d),()->(d,d)",
        transform=SPDCholeskyTransform(dim),
        initval=scale / (nu + dim + 1.0),  # the mode: always positive definite
        dims=dims,
    )
    chol = pt.specify_shape(spd_cholesky(Sigma), (*(None,) * (scale.ndim - 2), dim, dim))
    return Sigma, chol
