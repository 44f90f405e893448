"""Retention cohorts (Fader and Hardie 2007): the published counts, and named errors."""

import numpy as np
import pytest

from prime_science.core.errors import InvalidArgumentError
from prime_science.datasets import retention


def test_published_counts():
    cohorts = retention.load_retention()
    np.testing.assert_array_equal(cohorts.year, np.arange(13))
    assert cohorts.survivors["regular"][[0, 1, 5, 7, 12]].tolist() == [1000, 631, 289, 241, 173]
    assert cohorts.survivors["high_end"][[0, 1, 7, 12]].tolist() == [1000, 869, 491, 394]
    rates = retention.retention_rates(cohorts.survivors["regular"])
    assert rates[0] == pytest.approx(0.631) and np.all(np.diff(rates) > 0)  # retention rises


def test_rates_of_an_emptied_cohort_are_nan_not_an_error():
    np.testing.assert_array_equal(retention.retention_rates([10, 0, 0])[1:], [np.nan])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected a header"),
        ("year,regular\n", "no data rows"),
        ("year,regular\n0,1000\n1,x\n", r"line 3, column regular: expected an integer"),
        ("year,regular\n0,1000\n1,600,3\n", r"line 3: expected 2 fields"),
        ("year,regular\n0,1000\n2,600\n", "column year: expected the years"),
        ("year,regular\n0,1000\n1,600\n2,700\n", "column regular: expected survivor counts"),
        ("year,regular\n0,0\n", "expected a positive cohort size"),
        ("year,regular\n0,10\n1,-1\n", "expected non-negative counts"),
    ],
)
def test_malformed_file_is_named(tmp_path, text, message):
    (tmp_path / "retention").mkdir()
    file = tmp_path / "retention" / "cohort_survival.csv"
    file.write_text(text)
    with pytest.raises(InvalidArgumentError, match=message):
        retention.load_retention(tmp_path)
    assert file.read_text() == text
