"""Finite mixtures: the Gaussian mixture and the information criteria for choosing its size."""
