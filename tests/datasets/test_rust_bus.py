"""Rust (1987) bus data: the increment counts of PROVENANCE.md, the panel conventions, bad input."""

import numpy as np
import pytest

from prime_science.core.errors import InvalidArgumentError
from prime_science.datasets import rust_bus
from prime_science.datasets.source import DataNotFoundError, dataset_dir

TABLE_X_BIN = 450_000 / 175


@pytest.mark.parametrize(
    ("groups", "num_bins", "bin_size", "counts"),
    [
        ((4,), 90, 5_000.0, [1682, 2555, 55]),
        ((1, 2, 3, 4), 90, 5_000.0, [2844, 5217, 95]),
        ((1, 2, 3), 90, 5_000.0, [1162, 2662, 40]),
        ((1, 2, 3), 175, TABLE_X_BIN, [362, 1729, 1723, 49, 1]),
        ((4,), 175, TABLE_X_BIN, [511, 2473, 1231, 68, 6, 3]),
        ((1, 2, 3, 4), 175, TABLE_X_BIN, [873, 4202, 2954, 117, 7, 3]),
    ],
)
def test_increment_counts_equal_provenance(groups, num_bins, bin_size, counts):
    data = rust_bus.discretise(rust_bus.load_rust_bus(groups), num_bins, bin_size)
    np.testing.assert_array_equal(rust_bus.increment_counts(data), counts)


def test_group_sizes_and_replacements():
    sizes = {g: rust_bus.GROUP_FILES[g] for g in range(1, 9)}
    panels = {g: rust_bus.load_group(g) for g in range(1, 9)}
    assert sum(len(np.unique(p.bus)) for p in panels.values()) == 162
    for g, panel in panels.items():
        _, rows, buses = sizes[g]
        assert panel.bus.size == (rows - rust_bus.HEADER_ROWS) * buses
    replacements = {g: int(panels[g].replacement.sum()) for g in (1, 2, 3, 4)}
    assert replacements == {1: 0, 2: 0, 3: 27, 4: 33}


def test_replacement_month_and_mileage_reset():
    """Every replacement month is the last reading below the header odometer; the next month's
    mileage is the reading minus that odometer (checked against the raw matrix)."""
    filename, rows, buses = rust_bus.GROUP_FILES[4]
    raw = np.loadtxt(dataset_dir("rust_bus").joinpath(filename).open()).reshape(buses, rows)
    panel = rust_bus.load_group(4)
    for column in raw:
        rows_of_bus = panel.bus == column[0]
        odometer = column[rust_bus.HEADER_ROWS :]
        np.testing.assert_array_equal(panel.odometer[rows_of_bus], odometer)
        months = np.flatnonzero(panel.replacement[rows_of_bus])
        replaced = [r for r in (column[5], column[8]) if r > 0]
        assert len(months) == len(replaced)
        for month, at in zip(months, replaced, strict=True):
            assert odometer[month] < at <= odometer[month + 1]
            assert panel.mileage[rows_of_bus][month + 1] == odometer[month + 1] - at
    data = rust_bus.discretise(panel)
    after = np.flatnonzero(data.decision[:-1] == 1)
    np.testing.assert_array_equal(
        data.increment[after], np.ceil(panel.mileage[after + 1] / 5_000.0)
    )
    assert np.all(data.state >= 0) and np.all(data.state < 90)
    assert np.sum(data.increment == -1) == 37  # one last month per bus


def _write_group_4(folder, text):
    (folder / "rust_bus").mkdir()
    (folder / "rust_bus" / "a530875.asc").write_text(text)


def test_malformed_file_names_the_file(tmp_path):
    _write_group_4(tmp_path, "1\n2\nthree\n")
    with pytest.raises(InvalidArgumentError, match=r"a530875\.asc.*'three'"):
        rust_bus.load_rust_bus((4,), tmp_path)


def test_wrong_length_file_names_the_count(tmp_path):
    _write_group_4(tmp_path, "\n".join(["1"] * 10))
    with pytest.raises(InvalidArgumentError, match=r"a530875\.asc: expected 4736 numbers"):
        rust_bus.load_rust_bus((4,), tmp_path)


def test_decreasing_odometer_names_the_bus(tmp_path):
    column = [7, 1, 75, 0, 0, 0, 0, 0, 0, 1, 75] + list(range(100, 100 + 117))
    column[20] = 0
    _write_group_4(tmp_path, "\n".join(str(v) for v in column * 37))
    with pytest.raises(InvalidArgumentError, match=r"bus 7: expected non-decreasing"):
        rust_bus.load_rust_bus((4,), tmp_path)


def test_empty_or_unknown_group_selection():
    with pytest.raises(InvalidArgumentError, match="groups: expected at least one"):
        rust_bus.load_rust_bus(())
    with pytest.raises(InvalidArgumentError, match="groups: expected group numbers"):
        rust_bus.load_rust_bus((9,))


def test_bad_bins(tmp_path):
    panel = rust_bus.BusPanel(*(np.zeros(2, np.int64) for _ in range(6)))
    with pytest.raises(InvalidArgumentError, match="num_bins"):
        rust_bus.discretise(panel, 1)
    with pytest.raises(InvalidArgumentError, match="bin_size"):
        rust_bus.discretise(panel, 90, -5.0)


def test_replacement_beyond_every_reading_names_the_bus(tmp_path):
    """A header replacement odometer above the last reading cannot be placed in any month."""
    column = [7, 1, 75, 5, 80, 10_000_000, 0, 0, 0, 1, 75] + list(range(100, 100 + 117))
    _write_group_4(tmp_path, "\n".join(str(v) for v in column * 37))
    with pytest.raises(InvalidArgumentError, match=r"bus 7: expected a replacement odometer"):
        rust_bus.load_rust_bus((4,), tmp_path)


def test_non_ascii_file_names_the_file(tmp_path):
    (tmp_path / "rust_bus").mkdir()
    (tmp_path / "rust_bus" / "a530875.asc").write_bytes(b"1\n\xff\xfe2\n")
    with pytest.raises(InvalidArgumentError, match=r"a530875\.asc: expected an ASCII text file"):
        rust_bus.load_rust_bus((4,), tmp_path)


def test_override_folder_without_the_file_is_data_not_found(tmp_path):
    (tmp_path / "rust_bus").mkdir()
    with pytest.raises(DataNotFoundError, match=r"a530875\.asc"):
        rust_bus.load_rust_bus((4,), tmp_path)


@pytest.mark.parametrize("groups", [4, "4", None, 4.0])
def test_groups_must_be_a_sequence(groups):
    with pytest.raises(InvalidArgumentError, match="groups: expected a tuple or list"):
        rust_bus.load_rust_bus(groups)


@pytest.mark.parametrize("groups", [(4.0,), ("4",), (True,)])
def test_group_numbers_must_be_integers(groups):
    with pytest.raises(InvalidArgumentError, match="groups: expected integer group numbers"):
        rust_bus.load_rust_bus(groups)


@pytest.mark.parametrize("bin_size", [None, "5000", float("nan"), 0.0])
def test_bad_bin_size_is_named(bin_size):
    panel = rust_bus.load_group(2)
    with pytest.raises(InvalidArgumentError, match="bin_size"):
        rust_bus.discretise(panel, 90, bin_size)


def test_discretise_needs_a_panel():
    with pytest.raises(InvalidArgumentError, match="panel: expected a BusPanel"):
        rust_bus.discretise({"mileage": [1.0]}, 90, 5_000.0)


def test_increment_counts_below_the_largest_increment_is_named():
    data = rust_bus.discretise(rust_bus.load_rust_bus((4,)))
    with pytest.raises(InvalidArgumentError, match="num_increments"):
        rust_bus.increment_counts(data, 2)


@pytest.mark.parametrize(
    ("groups", "name"),
    [
        ((4,), "group4"),
        ((1, 2, 3, 4), "groups1to4"),
        ((1, 2, 3), "groups1to3"),
        ((1, 3), "groups1_3"),
    ],
)
def test_sample_name(groups, name):
    assert rust_bus.sample_name(groups) == name
