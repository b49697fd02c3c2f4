"""The back-ends: hand-written EM, VB, Gibbs and exact posteriors, and PyMC's NUTS, ADVI, MAP and
compound Gibbs (with NumPyro/BlackJAX). Each registers itself on import."""
