"""``latentzoo explore``: a local teaching page on which the data and the priors are edited and EM,
VB, Gibbs and the exact posterior redraw: three coins, a 2-D Gaussian mixture and the dice HMM.

Each view's module computes what its panels show, with the library's back-ends: :mod:`.coins`,
:mod:`.gmm`, :mod:`.dice` (the same small interface; :mod:`.common` holds what they share);
:mod:`.jobs` runs the slow back-ends (NUTS, ADVI) in the background; :mod:`.server` is the
Starlette app and :func:`~.server.serve` the command. Starlette, uvicorn and plotly are imported
only here, so the rest of latentzoo does not need them at import time.
"""
