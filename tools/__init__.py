"""Command-line programs of bigbigan_tf (installed as `bigbigan_tf.tools`).

Console scripts: bigbigan-train, bigbigan-evaluate, bigbigan-export,
bigbigan-benchmark and bigbigan-curves; with a trained model
bigbigan-encode, -reconstruct, -interpolate, -neighbours and -sample
(shared flags: trained_flags.py). Each is also
`python -m bigbigan_tf.tools.<name>` and, from a checkout,
`python tools/<name>.py`. Flags live here and nowhere else.

Start-up is quiet: TensorFlow's native start-up lines (CUDA probing on a
machine without a GPU, CPU feature notes) are muted while TensorFlow is
imported and its devices are set up. Set TF_CPP_MIN_LOG_LEVEL=0 to see them.
Log records at INFO reach the user only from bigbigan_tf itself (progress,
results); warnings and errors from every library do.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Iterator

from absl import logging as absl_logging


def _native_logs_wanted() -> bool:
  return os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0"


@contextlib.contextmanager
def quiet_native_start() -> Iterator[None]:
  """Mutes file descriptor 2 (native stderr) for the duration of the block.

  Python exceptions raised inside still reach the user: they are printed
  after the block, when stderr is restored.
  """
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
  if _native_logs_wanted():
    yield
    return
  sys.stderr.flush()
  saved = os.dup(2)
  devnull = os.open(os.devnull, os.O_WRONLY)
  os.dup2(devnull, 2)
  try:
    yield
  finally:
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)


class _OwnInfoOnly(logging.Filter):
  """Passes warnings and errors, and informational records of bigbigan_tf.

  TensorFlow, TF-Hub and TFDS log through absl at INFO too ("Load dataset
  info from ...", "Constructing tf.data.Dataset ..."); a user of the tools
  wants progress and results, not those.
  """

  def __init__(self):
    super().__init__()
    self._own_dirs = tuple(
        os.path.dirname(os.path.abspath(module.__file__)) + os.sep
        for module in (sys.modules["bigbigan_tf"], sys.modules[__name__]))

  def filter(self, record: logging.LogRecord) -> bool:
    return (record.levelno >= logging.WARNING
            or os.path.abspath(record.pathname).startswith(self._own_dirs))


def log_progress() -> None:
  """absl logging at INFO for bigbigan_tf's own records only (call in main)."""
  absl_logging.set_verbosity(absl_logging.INFO)
  # absl's handler, and TensorFlow's own logger, which prints through a
  # handler of its own ("INFO:tensorflow:Assets written to ..." for every
  # SavedModel).
  for filtered in (absl_logging.get_absl_handler(),
                   logging.getLogger("tensorflow")):
    if not any(isinstance(f, _OwnInfoOnly) for f in filtered.filters):
      filtered.addFilter(_OwnInfoOnly())
