"""``latentzoo explore``: a local teaching page on which the data and the priors are edited and EM,
VB, Gibbs and the exact posterior redraw (three coins first).

:mod:`.coins` computes what the page shows, with the library's back-ends; :mod:`.jobs` runs the
slow back-ends (NUTS, ADVI) in the background; :mod:`.server` is the Starlette app and
:func:`~.server.serve` the command. Starlette, uvicorn and plotly are imported only here, so the
rest of latentzoo does not need them at import time.
"""
