"""Finding and parsing gin files: by path, or by shipped name from anywhere."""

import logging
import pathlib

import gin
import pytest

from bigbigan_tf import bindings
from bigbigan_tf import config

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_shipped_configs_are_the_repository_gin_files():
  names = config.shipped_config_names()
  on_disk = sorted(p.relative_to(ROOT / "gin").as_posix()
                   for p in (ROOT / "gin").rglob("*.gin"))
  assert names == on_disk
  assert {"smoke.gin", "quickstart_mnist.gin", "table1/base.gin",
          "table2/resnet50.gin"} <= set(names)


def test_names_resolve_from_any_directory(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert config.resolve_gin_file("smoke.gin") == str(ROOT / "gin" / "smoke.gin")
  assert config.resolve_gin_file("table1/base.gin") == str(
      ROOT / "gin" / "table1" / "base.gin")
  # The repository path of a shipped file also works outside the checkout.
  assert config.resolve_gin_file("gin/smoke.gin") == str(
      ROOT / "gin" / "smoke.gin")


def test_an_existing_path_wins_over_a_shipped_name(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  (tmp_path / "smoke.gin").write_text("prior.z_dim = 7\n")
  assert config.resolve_gin_file("smoke.gin") == "smoke.gin"
  config.parse(["smoke.gin"])
  assert bindings.bound_value("prior.z_dim") == 7


def test_includes_resolve_by_name_from_any_directory(tmp_path, monkeypatch):
  """table2/resnet50.gin includes table1/... which includes table1/base.gin."""
  monkeypatch.chdir(tmp_path)
  config.parse(["table2/resnet50.gin"])
  assert bindings.bound_value("encoder.resolution") == 256
  assert bindings.bound_value("trainer.encoder_lr_multiplier") == 10
  assert bindings.bound_value("train.train_steps") == 1_000_000
  # A user's own file may include a shipped one by name.
  own = tmp_path / "mine.gin"
  own.write_text("include 'smoke.gin'\ngenerator.ch = 4\n")
  config.parse([str(own)])
  assert bindings.bound_value("generator.ch") == 4
  assert bindings.bound_value("encoder.base_channels") == 4


def test_unknown_file_is_a_clear_error(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  with pytest.raises(ValueError, match=r"no_such\.gin.*not found.*smoke\.gin"):
    config.parse(["no_such.gin"])


def test_bindings_win_over_files_and_macros_resolve():
  config.parse(["smoke.gin"], ["generator.ch = 6"])
  assert bindings.bound_value("generator.ch") == 6
  assert bindings.bound_value("generator.z_dim") == 16  # %Z_DIM
  assert bindings.bound_value("generator.not_bound", "default") == "default"
  gin.clear_config()


def test_includes_by_name_log_no_false_errors(caplog, tmp_path, monkeypatch):
  """gin's package lookup of `include 'table1/base.gin'` logs no error."""
  monkeypatch.chdir(tmp_path)
  with caplog.at_level(logging.INFO):
    config.parse(["table1/revnet.gin"])
  assert not [r for r in caplog.records if r.levelno >= logging.ERROR], (
      caplog.text)
  (tmp_path / "broken.gin").write_text("include 'table1/no_such.gin'\n")
  with pytest.raises(ValueError, match="no_such.gin"):
    config.parse([str(tmp_path / "broken.gin")])
