"""Where the real data sets are read from: the copies shipped in the package, or a user's folder.

Every data set the main job needs ships inside the package, under ``prime_science/datasets/data/``
(read with :mod:`importlib.resources`, so it works from a wheel, an editable install or a
checkout), each with its ``PROVENANCE.md`` (source, licence, checksums) beside it:

============  ===============================================================  =========
name          what                                                             size
============  ===============================================================  =========
rust_bus      Rust (1987) bus-engine odometer files (``*.asc``)                172 KB
retention     two published subscriber cohorts, survivors by year (CSV)        1 KB
obd           Open Bandit Dataset sample (10,000 rows per campaign and          1.2 MB
              behaviour policy, gzip-compressed CSV) + ``prior_bts.yaml``       (24 MB raw)
============  ===============================================================  =========

A user folder overrides the shipped copies: the ``path`` argument of a loader, else the
environment variable ``PRIME_SCIENCE_DATA`` (the ``--data`` flag of ``prime-science`` sets it).
That folder holds one sub-folder per data set in the same layout (for example the full Open Bandit
Dataset as ``<folder>/obd/{random,bts}/{all,men,women}/``, CSV files plain or ``.csv.gz``). An
override is taken at its word: a data set it lacks is a :class:`DataNotFoundError`, never a quiet
fall-back to the shipped sample.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from prime_science.core import errors

__all__ = [
    "DATASETS",
    "DATA_ENV_VAR",
    "DataNotFoundError",
    "check_available",
    "dataset_dir",
    "describe_source",
]

DATA_ENV_VAR = "PRIME_SCIENCE_DATA"
"""Environment variable naming a folder that overrides the shipped data sets."""

DATASETS: dict[str, str] = {
    "rust_bus": "Rust (1987) bus-engine replacement files",
    "retention": "Fader and Hardie (2007) subscriber retention cohorts",
    "obd": "Open Bandit Dataset (Saito et al. 2021) sample and production BTS prior",
}
"""The data sets known to the project: name -> what it is."""


class DataNotFoundError(FileNotFoundError):
    """A data set is not where the caller asked for it; the message says where it looked."""


def _override(path: str | os.PathLike[str] | None) -> tuple[Path, str] | None:
    if path is not None:
        return Path(path).expanduser(), "the path given"
    if os.environ.get(DATA_ENV_VAR):
        return Path(os.environ[DATA_ENV_VAR]).expanduser(), f"${DATA_ENV_VAR}"
    return None


def dataset_dir(name: str, path: str | os.PathLike[str] | None = None) -> Traversable:
    """The folder of data set ``name``: ``<path>/<name>``, else ``$PRIME_SCIENCE_DATA/<name>``,
    else the copy shipped in the package.

    Raises:
      InvalidArgumentError: ``name`` is not one of :data:`DATASETS`.
      DataNotFoundError: the override folder has no ``name`` sub-folder (or the shipped copy is
        missing from a broken install).
    """
    if name not in DATASETS:
        errors.fail("dataset", f"one of {sorted(DATASETS)}", repr(name))
    override = _override(path)
    if override is None:
        folder = resources.files("prime_science.datasets").joinpath("data", name)
        if not folder.is_dir():
            raise DataNotFoundError(
                f"the {name} data set is missing from the installed package ({folder}); "
                "reinstall prime-science, or point --data / $PRIME_SCIENCE_DATA at a copy"
            )
        return folder
    root, origin = override
    folder = root / name
    if not folder.is_dir():
        raise DataNotFoundError(
            f"data set {name!r} ({DATASETS[name]}): no folder {str(folder)!r} under {origin} "
            f"({str(root)!r}). Put the data set there in the shipped layout, or unset the "
            f"override (--data / ${DATA_ENV_VAR}) to use the copy shipped in the package."
        )
    return folder


def describe_source(name: str, path: str | os.PathLike[str] | None = None) -> str:
    """Where :func:`dataset_dir` reads ``name`` from, in words (for reports)."""
    override = _override(path)
    if override is None:
        return f"{name}: the copy shipped in the package"
    return f"{name}: {override[0] / name} ({override[1]})"


def check_available(names: Iterable[str], path: str | os.PathLike[str] | None = None) -> None:
    """Raise :class:`DataNotFoundError` (one line naming every missing data set) unless every
    data set in ``names`` can be found. Cheap: looks for the folders, reads no file."""
    missing = []
    for name in dict.fromkeys(names):
        try:
            dataset_dir(name, path)
        except DataNotFoundError as error:
            missing.append(str(error))
    if missing:
        raise DataNotFoundError("; ".join(missing))
