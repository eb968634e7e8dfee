"""Strategy selection (what the tools' --strategy and --tpu map to)."""

import pytest
import tensorflow as tf

from bigbigan_tf import distribute


def test_strategies_by_name():
  assert distribute.make_strategy("default") is tf.distribute.get_strategy()
  mirrored = distribute.make_strategy("mirrored")
  assert isinstance(mirrored, tf.distribute.MirroredStrategy)
  # Without GPUs it mirrors over the local CPU devices (the tests configure
  # two logical ones): one replica each.
  cpus = tf.config.list_logical_devices("CPU")
  assert len(cpus) == 2
  assert [tf.DeviceSpec.from_string(d).to_string().split("device:")[-1]
          for d in mirrored.extended.worker_devices] == ["CPU:0", "CPU:1"]
  assert mirrored.num_replicas_in_sync == 2
  assert not distribute.is_tpu(mirrored)


def test_unknown_strategy_is_a_clear_error():
  with pytest.raises(ValueError, match="mirroredd.*expected one of"):
    distribute.make_strategy("mirroredd")
