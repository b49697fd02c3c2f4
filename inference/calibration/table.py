"""From the records of finished simulations to a :class:`~latentzoo.inference.calibration.result.Calibration`:
the per-quantity table and the per-simulation table."""

from __future__ import annotations

import math

import numpy as np

from . import sbc_ranks
from .columns import TABLE_COLUMNS
from .result import Calibration

__all__ = ["TABLE_COLUMNS", "build_result"]

def _tests_per_row(kind: str) -> int:
    return 3 if kind == "variational" else 2


def build_result(job, rows, records: list[dict], alpha: float, runtime: float, n_simulations: int):
    """The :class:`~latentzoo.inference.calibration.result.Calibration` of ``records`` (sorted by index)."""
    import pandas as pd

    ok = [record for record in records if not record["error"]]
    n_rows = len(rows.labels)
    row_alpha = alpha / (_tests_per_row(job.kind) * max(n_rows, 1))
    notes = []
    table = pd.DataFrame(index=pd.Index(list(rows.labels), name="quantity"))
    if ok:
        truth = np.stack([record["truth"] for record in ok])
        estimate = np.stack([record["estimate"] for record in ok])
        error = (estimate - truth) / rows.prior_sd
        table["bias_sd"] = error.mean(axis=0)
        table["rmse_sd"] = np.sqrt((error**2).mean(axis=0))
    else:
        table["bias_sd"] = table["rmse_sd"] = math.nan
        notes.append("Every simulation failed.")
    pit = np.empty((0, n_rows))
    band = None
    ranked = job.kind != "point" and len(ok) >= 2
    if ranked:
        rng = np.random.default_rng(np.random.SeedSequence(job.random_seed, spawn_key=(2**32 - 1,)))
        pit = sbc_ranks.pit_from_ranks(np.stack([record["rank"] for record in ok]),
                                       [record["n_ranked"] for record in ok], rng)
        band = sbc_ranks.ecdf_band(len(ok), 1.0 - row_alpha, rng)
        inside = sbc_ranks.inside_band(pit, band)
        p_value = sbc_ranks.histogram_pvalue(pit)
        table["p_value"] = p_value
        table["ecdf_band"] = np.where(inside, "inside", "outside")
        for level in (50, 90):
            table[f"coverage_{level}"] = np.mean(np.stack([record[f"inside_{level}"] for record in ok]), axis=0)
        passed = inside & (p_value >= row_alpha)
        if job.kind == "variational":
            vsbc = sbc_ranks.vsbc_pvalue(pit)
            table["vsbc_p_value"] = vsbc
            passed &= vsbc >= row_alpha
        else:
            table["vsbc_p_value"] = math.nan
        table["diagnosis"] = sbc_ranks.dispersion_verdict(pit, row_alpha)
        table["calibrated"] = pd.array(passed, dtype="boolean")
    else:
        for column in ("p_value", "coverage_50", "coverage_90", "vsbc_p_value"):
            table[column] = math.nan
        table["ecdf_band"] = pd.NA
        table["diagnosis"] = ""
        table["calibrated"] = pd.array([pd.NA] * n_rows, dtype="boolean")
        if job.kind == "point":
            notes.append(f"The back-end {job.backend} returns a point estimate without uncertainty: "
                         "judged by bias and RMSE only.")
    table = table[list(TABLE_COLUMNS)]
    simulations = pd.DataFrame({
        "simulation": [record["index"] for record in records],
        "fit_seed": [record["fit_seed"] for record in records],
        "runtime_s": [record["runtime_s"] for record in records],
        "converged": [record["converged"] for record in records],
        "warnings": [record["warnings"] for record in records],
        "min_ess": [record["min_ess"] for record in records],
        "stride": [record["stride"] for record in records],
        "n_ranked": [record["n_ranked"] for record in records],
        "khat": [record["khat"] for record in records],
        "cached": [record["cached"] for record in records],
        "error": [record["error"] for record in records],
    }).set_index("simulation")
    failed = len(records) - len(ok)
    if failed:
        notes.append(f"{failed} of {len(records)} simulations failed (their fits raised) and are left out.")
    return Calibration(
        model=job.model, backend=job.backend, kind=job.kind, n_simulations=n_simulations,
        data_size=job.data_size, random_seed=job.random_seed, options=dict(job.options), table=table,
        simulations=simulations, pit=pit, alpha=alpha, row_alpha=row_alpha, band=band, runtime_s=runtime,
        cache=job.cache, notes=notes,
    )
