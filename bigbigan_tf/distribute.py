"""Choosing a tf.distribute strategy (the tools map their flags to this)."""

from __future__ import annotations

from typing import Optional

import tensorflow as tf

DEFAULT = "default"
MIRRORED = "mirrored"
MULTI_WORKER = "multi_worker"
TPU = "tpu"
STRATEGIES = (DEFAULT, MIRRORED, MULTI_WORKER, TPU)


def make_strategy(kind: str = DEFAULT,
                  tpu: Optional[str] = None) -> tf.distribute.Strategy:
  """Returns the strategy for `kind`; a `tpu` address implies TPUStrategy.

  Args:
    kind: "default" (one device), "mirrored" (all local GPUs, or the local
      CPU devices), "multi_worker" (MultiWorkerMirroredStrategy; cluster from
      the TF_CONFIG environment variable) or "tpu".
    tpu: TPU name or grpc address for the cluster resolver ("" or "local" on
      a TPU VM). Given, it selects TPUStrategy whatever `kind` says.

  Raises:
    ValueError: unknown kind.
  """
  if tpu is not None or kind == TPU:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
  if kind == DEFAULT:
    return tf.distribute.get_strategy()
  if kind == MIRRORED:
    return tf.distribute.MirroredStrategy()
  if kind == MULTI_WORKER:
    return tf.distribute.MultiWorkerMirroredStrategy()
  raise ValueError(f"Unknown strategy {kind!r}; expected one of {STRATEGIES}.")


def is_tpu(strategy: tf.distribute.Strategy) -> bool:
  return isinstance(strategy, (tf.distribute.TPUStrategy,
                               tf.distribute.experimental.TPUStrategy))
