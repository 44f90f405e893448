"""Real data sets, loaded from the data folder (:func:`prime_science.runner.data_dir`)."""
