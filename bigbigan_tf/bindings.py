"""Reading what the parsed gin config binds, for code that must know a value
it is not itself configured with (e.g. evaluation reading the data where
training read it)."""

from __future__ import annotations

from typing import Any

import gin


def bound_value(parameter: str, default: Any = None) -> Any:
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
