"""The core every model builds on: the protocols back-ends rely on, the base class and its validation
helpers, the conjugate families and the exact posteriors made of them."""
