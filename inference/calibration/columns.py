"""The columns of a calibration's per-quantity table, with what each holds: the table is built
from them (:mod:`.table`) and the report prints them (:mod:`.report`)."""

__all__ = ["TABLE_COLUMNS"]

#: the columns of ``Calibration.table``, with what each holds (the report prints these)
TABLE_COLUMNS = {
    "p_value": "chi-square test of a flat rank histogram (small: the ranks are not uniform)",
    "ecdf_band": "whether the ECDF of the ranks stays inside its simultaneous band (Säilynoja et al. 2022)",
    "coverage_50": "share of true values inside the posterior's central 50% interval",
    "coverage_90": "share of true values inside the posterior's central 90% interval",
    "bias_sd": "mean of (posterior mean - true value), in prior sd",
    "rmse_sd": "root mean square of (posterior mean - true value), in prior sd",
    "vsbc_p_value": "VSBC symmetry test of the ranks (variational back-ends; small: biased)",
    "diagnosis": "direction of a significant departure: under-/over-dispersed, posterior too low/high",
    "calibrated": "every test of the row passes at the row's level (NA for point estimates)",
}
