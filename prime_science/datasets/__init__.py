"""Real data sets, shipped with the package or read from a user's folder
(:mod:`prime_science.datasets.source`)."""
