"""Strategy selection (what tools/train.py's --strategy and --tpu map to)."""

import pytest
import tensorflow as tf

from bigbigan_tf import distribute


def test_strategies_by_name():
  assert distribute.make_strategy("default") is tf.distribute.get_strategy()
  mirrored = distribute.make_strategy("mirrored")
  assert isinstance(mirrored, tf.distribute.MirroredStrategy)
  assert mirrored.num_replicas_in_sync >= 1
  assert not distribute.is_tpu(mirrored)


def test_unknown_strategy_is_a_clear_error():
  with pytest.raises(ValueError, match="mirroredd.*expected one of"):
    distribute.make_strategy("mirroredd")
