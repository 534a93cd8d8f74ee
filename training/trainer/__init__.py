"""Training job: validate a dataset, train a small grid, register the best as `candidate`."""
