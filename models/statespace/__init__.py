"""Linear-Gaussian state-space models: the Kalman kernels (:mod:`.kalman`) and the models built on
them (:class:`~latentzoo.models.statespace.local_level.LocalLevel`)."""
