"""The Gaussian family: validated Gaussian data, the compiled density and statistic kernels, the data-
driven NIW prior, k-means, the NIW Gaussian and GDA, and their pictures."""
