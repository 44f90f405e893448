"""Data sets ship in the package; a user folder overrides them, and never falls back quietly."""

import pytest

from prime_science.core.errors import InvalidArgumentError
from prime_science.datasets import source


@pytest.mark.parametrize("name", sorted(source.DATASETS))
def test_every_data_set_ships_with_its_provenance(name, monkeypatch):
    monkeypatch.delenv(source.DATA_ENV_VAR, raising=False)
    folder = source.dataset_dir(name)
    assert folder.is_dir()
    provenance = folder.joinpath("PROVENANCE.md").read_text()
    assert "icen" in provenance or "Cite" in provenance  # licence or citation terms are stated


def test_override_by_environment_variable(tmp_path, monkeypatch):
    (tmp_path / "rust_bus").mkdir()
    monkeypatch.setenv(source.DATA_ENV_VAR, str(tmp_path))
    assert source.dataset_dir("rust_bus") == tmp_path / "rust_bus"
    assert str(tmp_path) in source.describe_source("rust_bus")


def test_override_without_the_data_set_names_it_and_does_not_fall_back(tmp_path, monkeypatch):
    monkeypatch.setenv(source.DATA_ENV_VAR, str(tmp_path))
    with pytest.raises(source.DataNotFoundError, match=r"'obd'.*PRIME_SCIENCE_DATA"):
        source.dataset_dir("obd")


def test_explicit_path_wins_over_the_environment(tmp_path, monkeypatch):
    (tmp_path / "a" / "retention").mkdir(parents=True)
    monkeypatch.setenv(source.DATA_ENV_VAR, str(tmp_path / "b"))
    assert source.dataset_dir("retention", tmp_path / "a") == tmp_path / "a" / "retention"


def test_unknown_data_set_is_a_named_error():
    with pytest.raises(InvalidArgumentError, match="dataset: expected one of"):
        source.dataset_dir("rust")


def test_check_available_names_every_missing_data_set_in_one_line(tmp_path):
    (tmp_path / "rust_bus").mkdir()
    source.check_available(["rust_bus"], tmp_path)
    with pytest.raises(source.DataNotFoundError) as error:
        source.check_available(["rust_bus", "obd", "retention", "obd"], tmp_path)
    message = str(error.value)
    assert "\n" not in message and "'obd'" in message and "'retention'" in message
    assert message.count("'obd'") == 1
