"""gin entry points: parse config files and bindings, build the model.

Importing this module registers every configurable of the library, so a
binding to a parameter that does not exist fails at parse time with gin's
error naming the configurable and parameter.
"""

from __future__ import annotations

from typing import Sequence

import gin

# Imported for their gin registrations.
from bigbigan_tf import model as model_lib
from bigbigan_tf import networks  # pylint: disable=unused-import


def parse(gin_files: Sequence[str] = (),
          gin_bindings: Sequence[str] = (),
          clear: bool = True) -> None:
  """Parses gin files then bindings (bindings win).

  Raises:
    ValueError: a binding names an unknown configurable or parameter (gin's
      message names it), or a file does not exist.
  """
  _register_configurables()
  if clear:
    gin.clear_config()
  try:
    gin.parse_config_files_and_bindings(list(gin_files), list(gin_bindings),
                                        finalize_config=False)
  except (ValueError, KeyError, IOError) as error:
    raise ValueError(f"Invalid gin configuration: {error}") from error


def bound_value(parameter: str, default=None):
  """The value gin binds to "configurable.parameter", or `default`.

  A macro (`param = %NAME`) is resolved to the macro's value.
  """
  try:
    value = gin.query_parameter(parameter)
  except ValueError:
    return default
  while str(value).startswith("%") and hasattr(value, "selector"):
    value = gin.query_parameter(str(value))
  return value


def _register_configurables() -> None:
  """Imports every module that defines configurables (import cycles forbid
  doing this at the top of this module: the trainer imports it)."""
  # pylint: disable=g-import-not-at-top,unused-import
  from bigbigan_tf import data
  from bigbigan_tf import evaluate
  from bigbigan_tf import training
  from bigbigan_tf.evaluation import linear_probe


def build_model() -> model_lib.BigBiGAN:
  """Builds the BigBiGAN bound by the parsed gin config."""
  return model_lib.configured_bigbigan()
