"""PyTensor Ops (with their Numba and JAX implementations) and the PyMC building blocks the models'
declarations share."""
