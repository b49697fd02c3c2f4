"""The result of :func:`~latentzoo.inference.calibrate`: the tables, the PIT values and what the
report needs. Built by :mod:`.table`; drawn and saved by :mod:`.report`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["Calibration"]


@dataclass(eq=False)
class Calibration:
    """The result of :func:`calibrate`.

    Attributes
    ----------
    model, backend : the model (with an explicit prior) and the back-end's name
    kind : {"sampler", "exact", "variational", "point"}
    table : pandas.DataFrame
        One row per scalar quantity (index ``quantity``), columns: ``p_value`` (chi-square test of
        the rank histogram), ``ecdf_band`` ("inside"/"outside" the simultaneous band),
        ``coverage_50``/``coverage_90`` (share of truths inside the posterior's central 50%/90%
        interval), ``bias_sd``/``rmse_sd`` (posterior mean minus truth, in prior sd),
        ``vsbc_p_value`` (variational back-ends), ``diagnosis`` (under-/over-dispersed, too
        low/high) and ``calibrated`` (a nullable boolean: NA for point estimates).
    simulations : pandas.DataFrame
        One row per simulation: seed, runtime, convergence, warnings, error, ESS, thinning
        stride, draws ranked and (``vb``) PSIS k-hat.
    pit : ndarray of shape (n_ok, n_quantities)
        Continuous PIT values of the simulations that finished (empty for point estimates).
    alpha : float
        The family-wise level of ``calibrated``; each test of each row is at ``row_alpha``.
    band : (eval_points, lower, upper) or None
        The simultaneous ECDF band at level ``1 - row_alpha``.
    """

    model: object
    backend: str
    kind: str
    n_simulations: int
    data_size: object
    random_seed: int
    options: dict
    table: object
    simulations: object
    pit: np.ndarray
    alpha: float
    row_alpha: float
    band: tuple | None
    runtime_s: float = math.nan
    cache: str | None = None
    notes: list = field(default_factory=list)

    @property
    def calibrated(self) -> bool | None:
        """True when every row is calibrated and no simulation failed; None for point estimates."""
        if self.kind == "point":
            return None
        return bool(self.table["calibrated"].fillna(False).all()) and self.n_failed == 0

    @property
    def n_failed(self) -> int:
        return int((self.simulations["error"] != "").sum())

    @property
    def worst_p_value(self) -> float:
        """The smallest rank-histogram p-value over the rows (NaN for point estimates)."""
        values = self.table["p_value"].to_numpy(float)
        return float(np.nanmin(values)) if np.isfinite(values).any() else math.nan

    @property
    def median_khat(self) -> float:
        values = self.simulations["khat"].to_numpy(float)
        return float(np.nanmedian(values)) if np.isfinite(values).any() else math.nan

    def summary(self) -> str:
        """One paragraph saying what was run and what was found."""
        from .report import summary

        return summary(self)

    def plot(self, quantities=None):
        """Rank histograms and ECDF-difference plots with their simultaneous band (a Figure)."""
        from .report import plot_calibration

        return plot_calibration(self, quantities)

    def ranks(self):
        """The PIT values as an ``xarray.DataTree`` with a ``prior_sbc`` group (one variable per
        quantity, dims ``(chain, draw)`` = ``(1, simulation)``), the layout of simuk and of
        ``arviz_plots.plot_ecdf_pit``."""
        import xarray as xr

        variables = {f"q{i}": (("chain", "draw"), self.pit[None, :, i]) for i in range(self.pit.shape[1])}
        dataset = xr.Dataset(variables)
        for i, label in enumerate(self.table.index):
            dataset[f"q{i}"].attrs["quantity"] = label
        return xr.DataTree.from_dict({"prior_sbc": dataset})

    def save(self, directory) -> Path:
        """Write ``table.csv``, ``simulations.csv``, the figure and ``report.html`` to ``directory``."""
        from .report import save

        return save([self], directory)
