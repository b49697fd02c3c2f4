"""The three-coin model (seed 003): its data, the model and its picture."""
