"""Numba implementations of latentzoo's PyTensor Ops, cached on disk by PyTensor.

PyTensor 3 compiles graphs with Numba by default. An Op without a Numba implementation runs its
Python ``perform`` in object mode, and an Op registered through the legacy ``numba_funcify``
alone has no cache key, which makes every graph containing it uncacheable: every new process
compiled the HMM model again. Registering through
``register_funcify_default_op_cache_key`` gives PyTensor a key, so a compiled model is reused
across processes and clones (the cache lives under PyTensor's ``base_compiledir``).

Numba inlines the kernels a wrapper calls into the cached machine code, so the key carries a hash
of the kernels' source: editing a kernel invalidates the cached graphs that embed it.
"""

from __future__ import annotations

import hashlib
import inspect
from typing import Callable

__all__ = ["register_numba_impl", "source_version"]


def source_version(*objects) -> int:
    """A 60-bit integer that changes whenever the source of any of ``objects`` changes.

    Parameters
    ----------
    *objects : modules, classes or functions
    """
    digest = hashlib.sha256()
    for obj in objects:
        digest.update(inspect.getsource(obj).encode())
    return int(digest.hexdigest()[:15], 16)


def register_numba_impl(op_class: type, build: Callable, *sources) -> None:
    """Register ``build(op, node) -> numba function`` as ``op_class``'s Numba implementation.

    Parameters
    ----------
    op_class : type
        A PyTensor Op class.
    build : callable
        Returns an ``njit`` function taking the Op's inputs and returning its outputs (a tuple
        when there are several).
    *sources : modules or functions
        Whose source the compiled function embeds (hashed into the cache key).
    """
    from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key

    version = source_version(build, *sources)

    @register_funcify_default_op_cache_key(op_class)
    def _funcify(op, node=None, **kwargs):
        return build(op, node), version
