"""Open Bandit Dataset: the shipped sample reads compressed, agrees with PROVENANCE.md, and every
malformed row is a named error."""

import gzip
import hashlib
import shutil

import numpy as np
import pytest

from prime_science.core.errors import InvalidArgumentError
from prime_science.datasets import obd
from prime_science.datasets.source import DataNotFoundError, dataset_dir

# PROVENANCE.md: sha256[:16] of the original CSV files, and the click counts of the sample.
SHA256 = {
    ("random", "all"): "7168295b6e0a9eab",
    ("random", "men"): "ede6d08c6877f99c",
    ("random", "women"): "e65f3bd3beb17664",
    ("bts", "all"): "0ad874e4dbf6902f",
    ("bts", "men"): "db6d1f7ed2d591ba",
    ("bts", "women"): "e5d1b49a39b60858",
}
CLICKS = {
    ("random", "all"): 38,
    ("random", "men"): 46,
    ("random", "women"): 46,
    ("bts", "all"): 42,
    ("bts", "men"): 69,
    ("bts", "women"): 46,
}


@pytest.mark.parametrize(("policy", "campaign"), sorted(SHA256))
def test_compressed_files_are_the_originals_byte_for_byte(policy, campaign):
    file = dataset_dir("obd").joinpath(policy, campaign, f"{campaign}.csv.gz")
    digest = hashlib.sha256(gzip.decompress(file.read_bytes())).hexdigest()
    assert digest[:16] == SHA256[policy, campaign]


@pytest.mark.parametrize(("policy", "campaign"), sorted(SHA256))
def test_sample_summary_matches_provenance(policy, campaign):
    log = obd.load_obd(policy, campaign)
    num_items = obd.CAMPAIGNS[campaign]
    assert log.item.size == 10_000 and log.num_items == num_items
    assert int(log.click.sum()) == CLICKS[policy, campaign]
    assert set(np.unique(log.position)) == {0, 1, 2}
    assert log.items.numeric.shape == (num_items,) and log.items.categorical.shape == (num_items, 3)
    if policy == "random":
        np.testing.assert_allclose(log.propensity, 1.0 / num_items, rtol=1e-6)
    else:
        assert 0 < log.propensity.min() < log.propensity.max() <= 1


def test_bts_prior_has_one_beta_per_item():
    for campaign, num_items in obd.CAMPAIGNS.items():
        alpha, beta = obd.load_bts_prior(campaign)
        assert alpha.shape == beta.shape == (num_items,)
        assert np.all(alpha > 0) and np.all(beta > 0)
    alpha, beta = obd.load_bts_prior("all")
    assert (alpha[0], beta[0]) == (47.0, 12198.0)


def _user_copy(tmp_path, campaign="men"):
    """A user folder holding the men/random log as plain CSV (the full-dataset layout)."""
    folder = tmp_path / "obd" / "random" / campaign
    folder.mkdir(parents=True)
    shipped = dataset_dir("obd").joinpath("random", campaign)
    for stem in (campaign, "item_context"):
        text = gzip.decompress(shipped.joinpath(f"{stem}.csv.gz").read_bytes()).decode()
        (folder / f"{stem}.csv").write_text(text)
    return folder


def test_plain_csv_in_a_user_folder_reads_the_same(tmp_path):
    _user_copy(tmp_path)
    mine, shipped = obd.load_obd("random", "men", tmp_path), obd.load_obd("random", "men")
    for a, b in zip(mine, shipped, strict=True):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)


def _corrupt(folder, line, column, value):
    """Set field ``column`` of CSV line ``line`` (1-based, header = 1) of men.csv."""
    file = folder / "men.csv"
    lines = file.read_text().splitlines()
    header = lines[0].split(",")
    fields = lines[line - 1].split(",")
    fields[header.index(column)] = value
    lines[line - 1] = ",".join(fields)
    file.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("propensity_score", "0", r"line 5, column propensity_score: expected a probability"),
        ("propensity_score", "1.5", r"line 5, column propensity_score: expected a probability"),
        ("propensity_score", "nan", r"line 5, column propensity_score: expected a probability"),
        ("propensity_score", "high", r"line 5, column propensity_score: expected a number"),
        ("item_id", "34", r"line 5, column item_id: expected an item id in 0 \.\. 33"),
        ("item_id", "-1", r"line 5, column item_id"),
        ("item_id", "2.5", r"line 5, column item_id"),
        ("position", "4", r"line 5, column position: expected a position in 1 \.\. 3"),
        ("click", "2", r"line 5, column click: expected 0 or 1"),
        ("user-item_affinity_3", "inf", r"expected finite user-item affinities"),
    ],
)
def test_malformed_row_is_named_by_line_and_column(tmp_path, column, value, message):
    folder = _user_copy(tmp_path)
    _corrupt(folder, 5, column, value)
    before = (folder / "men.csv").read_bytes()
    with pytest.raises(InvalidArgumentError, match=message):
        obd.load_obd("random", "men", tmp_path)
    assert (folder / "men.csv").read_bytes() == before  # the file is left as it was


def test_missing_column_is_named(tmp_path):
    folder = _user_copy(tmp_path)
    lines = (folder / "men.csv").read_text().splitlines()
    (folder / "men.csv").write_text("\n".join(line.replace("click", "clicks", 1) for line in lines))
    with pytest.raises(InvalidArgumentError, match="men.csv: expected the columns .* column click"):
        obd.load_obd("random", "men", tmp_path)


def test_short_row_and_header_only_are_named(tmp_path):
    folder = _user_copy(tmp_path)
    lines = (folder / "men.csv").read_text().splitlines()
    (folder / "men.csv").write_text("\n".join([*lines[:3], "1,2,3", *lines[4:]]))
    with pytest.raises(InvalidArgumentError, match=r"men.csv, line 4: expected \d+ fields"):
        obd.load_obd("random", "men", tmp_path)
    (folder / "men.csv").write_text(lines[0] + "\n")
    with pytest.raises(InvalidArgumentError, match="at least one data row"):
        obd.load_obd("random", "men", tmp_path)


def test_broken_gzip_and_non_utf8_are_named(tmp_path):
    folder = _user_copy(tmp_path)
    (folder / "men.csv").unlink()
    (folder / "men.csv.gz").write_bytes(b"\x1f\x8b\x08 not really gzip")
    with pytest.raises(InvalidArgumentError, match=r"men.csv.gz: expected a readable \(gzip\)"):
        obd.load_obd("random", "men", tmp_path)
    (folder / "men.csv.gz").unlink()
    (folder / "men.csv").write_bytes(b"item_id\n\xff\xfe\n")
    with pytest.raises(InvalidArgumentError, match="men.csv: expected UTF-8 text"):
        obd.load_obd("random", "men", tmp_path)


def test_item_context_must_list_every_item(tmp_path):
    folder = _user_copy(tmp_path)
    lines = (folder / "item_context.csv").read_text().splitlines()
    (folder / "item_context.csv").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(InvalidArgumentError, match=r"item_context.csv, column item_id"):
        obd.load_obd("random", "men", tmp_path)


def test_missing_files_and_unknown_choices(tmp_path):
    folder = _user_copy(tmp_path)
    shutil.rmtree(folder)
    folder.mkdir()
    with pytest.raises(DataNotFoundError, match="neither men.csv nor men.csv.gz"):
        obd.load_obd("random", "men", tmp_path)
    with pytest.raises(InvalidArgumentError, match="policy: expected one of"):
        obd.load_obd("uniform", "men")
    with pytest.raises(InvalidArgumentError, match="campaign: expected one of"):
        obd.load_obd("bts", "kids")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("men: [1, 2]", "expected a mapping men"),
        ("men: {alpha: [1, 2], beta: [1, 2]}", r"men.alpha: expected 34 values"),
        ("men: {alpha: " + str([1.0] * 34) + ", beta: " + str([0.0] * 34) + "}", "men.beta"),
        ("men: {alpha: a, beta: b}", r"men.alpha: expected a list of numbers"),
        (": : :", "expected valid UTF-8 YAML"),
    ],
)
def test_malformed_bts_prior_is_named(tmp_path, text, message):
    (tmp_path / "obd").mkdir()
    (tmp_path / "obd" / "prior_bts.yaml").write_text(text)
    with pytest.raises(InvalidArgumentError, match=message):
        obd.load_bts_prior("men", tmp_path)
