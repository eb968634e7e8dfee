"""gin entry points: find and parse config files and bindings, build the model.

Config files are found by path or by name: `quickstart_mnist.gin` and
`table1/base.gin` name files shipped with the package (the repository's gin/
folder, installed as bigbigan_tf/configs), from any working directory; the
`include` lines inside them resolve the same way.

Parsing registers every configurable of the library first, so a binding to a
parameter that does not exist fails at parse time with gin's error naming
the configurable and parameter.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
from typing import Iterator, Sequence

import gin
import tensorflow as tf

from bigbigan_tf import configurables  # pylint: disable=unused-import
from bigbigan_tf import model as model_lib


def parse(gin_files: Sequence[str] = (),
          gin_bindings: Sequence[str] = (),
          clear: bool = True) -> None:
  """Parses gin files then bindings (bindings win).

  Raises:
    ValueError: a binding names an unknown configurable or parameter (gin's
      message names it), or a file does not exist.
  """
  _add_shipped_configs_to_search_path()
  paths = [resolve_gin_file(name) for name in gin_files]
  if clear:
    gin.clear_config()
  try:
    with _quiet_package_lookups():
      gin.parse_config_files_and_bindings(paths, list(gin_bindings),
                                          finalize_config=False)
  except (ValueError, KeyError, IOError) as error:
    raise ValueError(f"Invalid gin configuration: {error}") from error


class _PackageLookupFilter(logging.Filter):
  """Drops gin's "Path not found" error records.

  For an `include 'table1/base.gin'`, gin also asks whether `table1` is a
  Python package holding the file and logs an error when it is not, before
  it finds the file under the shipped config directory: a false alarm. A
  file that is really missing still fails with gin's exception.
  """

  def filter(self, record: logging.LogRecord) -> bool:
    return not (record.levelno == logging.ERROR
                and str(record.msg).startswith("Path not found")
                and record.pathname.endswith(
                    os.path.join("gin", "resource_reader.py")))


@contextlib.contextmanager
def _quiet_package_lookups() -> Iterator[None]:
  root = logging.getLogger()
  lookup_filter = _PackageLookupFilter()
  root.addFilter(lookup_filter)
  try:
    yield
  finally:
    root.removeFilter(lookup_filter)


def shipped_config_dir() -> pathlib.Path:
  """The folder of the gin files shipped with the package.

  In a source checkout or an editable install it is the repository's gin/;
  in an installed package, bigbigan_tf/configs.

  Raises:
    FileNotFoundError: neither exists (a broken installation).
  """
  package = pathlib.Path(__file__).resolve().parent
  for candidate in (package / "configs", package.parent / "gin"):
    if (candidate / "smoke.gin").is_file():
      return candidate
  raise FileNotFoundError(
      f"No shipped gin files next to {package} (looked for configs/smoke.gin "
      "and ../gin/smoke.gin): reinstall bigbigan_tf.")


def shipped_config_names() -> list[str]:
  """Names of the shipped gin files, e.g. "smoke.gin", "table1/base.gin"."""
  root = shipped_config_dir()
  return sorted(path.relative_to(root).as_posix()
                for path in root.rglob("*.gin"))


def resolve_gin_file(name: str | os.PathLike[str]) -> str:
  """The path of a gin file given by path or by shipped name.

  A path that exists wins (relative to the working directory, or absolute,
  or a gs:// URL); otherwise `name` is looked up among the shipped files,
  also with a leading "gin/" removed (the repository path of a shipped
  file works from any directory).

  Raises:
    ValueError: no such file; the message lists the shipped names.
  """
  name = os.fspath(name)
  if tf.io.gfile.exists(name):
    return name
  root = shipped_config_dir()
  candidates = [name]
  if name.startswith("gin/"):
    candidates.append(name[len("gin/"):])
  for candidate in candidates:
    path = root / candidate
    if path.is_file():
      return str(path)
  raise ValueError(
      f"gin file {name!r} not found: it is neither a path that exists (from "
      f"{os.getcwd()}) nor a shipped config. Shipped configs: "
      f"{', '.join(shipped_config_names())}.")


def _add_shipped_configs_to_search_path() -> None:
  """Lets `include 'table1/base.gin'` resolve from any working directory."""
  root = str(shipped_config_dir())
  if root not in gin.config._LOCATION_PREFIXES:  # pylint: disable=protected-access
    gin.add_config_file_search_path(root)


def build_model() -> model_lib.BigBiGAN:
  """Builds the BigBiGAN bound by the parsed gin config."""
  return model_lib.configured_bigbigan()
