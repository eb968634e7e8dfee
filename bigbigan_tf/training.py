"""The BigBiGAN training loop: one code path for CPU, GPUs, workers and TPUs.

Structure (after orbit): `Trainer.train_loop(iterator, n)` is a tf.function
whose `tf.range` loop holds, per outer step, the input and `strategy.run` of
the replica step (`d_steps` D updates and one E+G update, bigbigan_tf.updates,
then the step's bookkeeping: every variable write of the step is inside it);
it returns each metric's mean over the loop. `train()` is the outer Python
loop: it runs inner loops and, between them, the host actions
(bigbigan_tf.actions: summaries, image grids, evaluation, progress), with
checkpoints, resumption, SIGTERM, the model_dir lease and non-finite-loss
handling. The distributed math is stated in bigbigan_tf/updates.py.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Callable, Iterator, Optional, Sequence

from absl import logging
import gin
import keras
import numpy as np
import tensorflow as tf

from bigbigan_tf import actions
from bigbigan_tf import checkpoints
from bigbigan_tf import data
from bigbigan_tf import distribute
from bigbigan_tf import layers
from bigbigan_tf import lease as lease_lib
from bigbigan_tf import losses
from bigbigan_tf import model as model_lib
from bigbigan_tf import optimizers
from bigbigan_tf import updates
from bigbigan_tf.layers import diff_augment
from bigbigan_tf.networks import common

LEARNING_RATE_DECAYS = ("constant", "linear")
LATENT_REGRESSION_STATISTICS = ("batch", "moving", "real")
STANDING_STATISTICS_INPUTS = ("separate", "training")
# Kept here too: checkpoints and tests name the optimiser by this path.
FusedAdam = optimizers.FusedAdam


class NonFiniteLossError(RuntimeError):
  """Training produced a NaN or infinite loss."""


@gin.configurable("trainer", denylist=["model", "strategy",
                                       "global_batch_size"])
class Trainer(updates.Updates):
  """Optimisers, EMA copies, the global step and the compiled steps.

  Build inside `strategy.scope()` (the constructor enters it itself).

  Args:
    model: the BigBiGAN to train (built in the strategy's scope).
    strategy: the tf.distribute strategy.
    global_batch_size: images per update, summed over replicas.
    d_steps: discriminator updates per E+G update (2).
    learning_rate: G's Adam learning rate (E's is this x multiplier).
    d_learning_rate: D's Adam learning rate.
    encoder_lr_multiplier: 1, or 10 for the paper's "up E LR" rows.
    beta1, beta2: Adam's (0 and 0.999, BigGAN).
    ema_decay: decay of the EMA copies of G and E (0.9999).
    ema_start_step: before this step the EMA copies track the weights
      exactly (decay 0), so short runs have meaningful EMA weights.
    learning_rate_decay: "constant" (the paper) or "linear": every rate
      stays at its configured value until `decay_start_step`, then falls
      linearly to zero at `decay_end_step` (and stays there).
    decay_start_step, decay_end_step: the linear decay's range.
    jit_compile: XLA-compile the per-replica step where the strategy does
      not compile it itself (on a TPU the whole replicated step is one XLA
      program anyway, so this is ignored there).
    seed: base of every stateless latent seed.
    augment_policy: differentiable augmentation of every image D sees (real
      and generated, in D's and E+G's updates; E encodes the clean x), from
      layers.diff_augment.POLICIES, e.g. ("translation", "cutout"). Empty
      (the paper): none. Each replica draws its own transforms.
    gradient_diagnostics: also report how E's latent gradient splits
      between s_z and s_xz (`grad_sq/...` per-example squared norms of
      dL_EG/dz_hat from each score, and their share): two extra
      backward passes through H and J per E+G update.
    latent_regression_weight: lambda of a latent regression term added to
      the E+G loss (0, the paper: none): lambda * mean over the generator
      pairs of ||mu_E(G(z)) - z||^2 (summed over z's dimensions), with G(z)
      held constant (only E learns from it) and shown to E at its
      resolution. E's batch norm on G(z) follows
      `latent_regression_statistics`.
    latent_regression_statistics: "batch": E normalises G(z) with the
      batch's own moments and does not fold them into its moving
      statistics, which come from real images only; "moving": E runs in
      inference mode on G(z), normalising with those moving statistics, as
      the evaluation (and a user) runs it; "real": E encodes [x; G(z)] in
      one training-mode pass whose batch-norm moments come from the real
      rows only, so G(z) is normalised by the same step's real-image
      moments (as the evaluation's standing statistics of real images do,
      without the moving statistics' lag) and E(x) is what it is alone.
    latent_regression_warmup_steps: the latent regression's weight rises
      linearly from lambda / N at the first step (global step 0) to lambda
      at the N-th (global step N - 1) (0: lambda from the first step). At the start G's images are far from
      real ones, and normalised by real images' statistics ("real",
      "moving") they give the term errors of thousands: the large
      gradients then fill E's Adam second moments, which (beta2 0.999)
      shrink E's steps for thousands of steps (docs/experiments.md, Q15).
    cycle_weight: weight of ALICE's explicit cycle term on real images (0:
      none): weight * the mean over examples and pixels of
      (pool(x) - G(z_hat))^2, z_hat = E(x) as sampled for the adversarial
      term; E and G both learn from it.
  """

  def __init__(self,
               model: model_lib.BigBiGAN,
               strategy: tf.distribute.Strategy,
               global_batch_size: int,
               d_steps: int = 2,
               learning_rate: float = 5e-5,
               d_learning_rate: float = 2e-4,
               encoder_lr_multiplier: float = 1.0,
               beta1: float = 0.0,
               beta2: float = 0.999,
               ema_decay: float = 0.9999,
               ema_start_step: int = 0,
               learning_rate_decay: str = "constant",
               decay_start_step: int = 0,
               decay_end_step: int = 0,
               jit_compile: bool = False,
               seed: int = 0,
               augment_policy: Sequence[str] = (),
               gradient_diagnostics: bool = True,
               latent_regression_weight: float = 0.0,
               latent_regression_statistics: str = "batch",
               latent_regression_warmup_steps: int = 0,
               cycle_weight: float = 0.0):
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
      raise ValueError(f"Global batch size {global_batch_size} must divide "
                       f"evenly across {replicas} replicas.")
    if d_steps < 1:
      raise ValueError(f"d_steps must be >= 1, got {d_steps}.")
    for name, weight in (("latent_regression_weight",
                          latent_regression_weight),
                         ("cycle_weight", cycle_weight)):
      if not weight >= 0:
        raise ValueError(f"{name} must be >= 0, got {weight}.")
      if weight and model.encoder is None:
        raise ValueError(f"{name} = {weight} needs an encoder; this model "
                         "has none (the StandardGAN).")
    if (isinstance(latent_regression_warmup_steps, bool)
        or not isinstance(latent_regression_warmup_steps, (int, float))
        or int(latent_regression_warmup_steps) != latent_regression_warmup_steps
        or latent_regression_warmup_steps < 0):
      raise ValueError("latent_regression_warmup_steps must be an integer "
                       ">= 0 (0: no warm-up), got "
                       f"{latent_regression_warmup_steps!r}.")
    if latent_regression_statistics not in LATENT_REGRESSION_STATISTICS:
      raise ValueError(
          "latent_regression_statistics must be one of "
          f"{LATENT_REGRESSION_STATISTICS}, got "
          f"{latent_regression_statistics!r}.")
    if latent_regression_weight and latent_regression_statistics == "real":
      # Only the library's batch norm takes the real rows' moments: any
      # other would normalise E(x) with G(z)'s rows too.
      others = [layer.name for layer in model.encoder._flatten_layers()  # pylint: disable=protected-access
                if isinstance(layer, keras.layers.BatchNormalization)]
      if others:
        raise ValueError(
            "latent_regression_statistics = 'real' needs every batch norm of "
            "E to be a layers.CrossReplicaBatchNorm; this encoder also has "
            f"keras BatchNormalization layers {others}.")
    if learning_rate_decay not in LEARNING_RATE_DECAYS:
      raise ValueError(
          f"learning_rate_decay must be one of {LEARNING_RATE_DECAYS}, got "
          f"{learning_rate_decay!r}.")
    if (learning_rate_decay == "linear"
        and not 0 <= decay_start_step < decay_end_step):
      raise ValueError(
          "A linear learning-rate decay needs 0 <= decay_start_step < "
          f"decay_end_step, got decay_start_step={decay_start_step}, "
          f"decay_end_step={decay_end_step}.")
    self.model = model
    self.strategy = strategy
    self.global_batch_size = global_batch_size
    self.per_replica_batch = global_batch_size // replicas
    self.d_steps = d_steps
    self.learning_rates = {
        "generator": learning_rate, "discriminator": d_learning_rate,
        "encoder": learning_rate * encoder_lr_multiplier}
    self.learning_rate_decay = learning_rate_decay
    self.decay_start_step = decay_start_step
    self.decay_end_step = decay_end_step
    self.ema_decay = ema_decay
    self.ema_start_step = ema_start_step
    self.jit_compile = bool(jit_compile) and not distribute.is_tpu(strategy)
    self.seed = seed
    self.augment_policy = diff_augment.check_policy(augment_policy)
    self.gradient_diagnostics = gradient_diagnostics
    self.latent_regression_weight = float(latent_regression_weight)
    self.latent_regression_statistics = latent_regression_statistics
    self.latent_regression_warmup_steps = int(latent_regression_warmup_steps)
    self.cycle_weight = float(cycle_weight)
    self._metric_keys = self.metric_keys()
    with strategy.scope():
      # Replica-identical: every replica counts its own copy inside the step.
      self.global_step = tf.Variable(0, dtype=tf.int64, trainable=False,
                                     name="global_step",
                                     aggregation=tf.VariableAggregation.NONE)
      # Per replica: the first step with a non-finite metric (-1: none);
      # the host takes the earliest over replicas (first_bad_step_value).
      self.first_bad_step = tf.Variable(
          -1, dtype=tf.int64, trainable=False, name="first_bad_step",
          aggregation=tf.VariableAggregation.NONE)
      # Per replica: the sums of the step metrics since the loop started;
      # read once per loop, summed over replicas.
      self._metric_sums = tf.Variable(
          tf.zeros([len(self._metric_keys)]), trainable=False,
          name="metric_sums",
          synchronization=tf.VariableSynchronization.ON_READ,
          aggregation=tf.VariableAggregation.SUM)
      self.optimizers = {}
      for role, network in model.networks().items():
        optimizer = FusedAdam(self.learning_rates[role],
                              schedule=self._scheduled_rate(role),
                              beta_1=beta1, beta_2=beta2, name=f"{role}_adam")
        optimizer.build(network.trainable_variables)
        self.optimizers[role] = optimizer
      # EMA copies of G and E: same architecture, weights copied below.
      self.ema = {role: common.clone(model.networks()[role])
                  for role in ("generator", "encoder")
                  if role in model.networks()}
    # The EMA copies use the live power-iteration state u of spectral norm
    # (an estimate for W that suits the slowly moving EMA of W as well).
    self._power_iteration_pairs = [
        (ema_layer.sn_u, live_layer.sn_u)
        for role, copy in self.ema.items()
        for ema_layer, live_layer in zip(
            layers.spectral_norm_layers(copy),
            layers.spectral_norm_layers(model.networks()[role]))]
    # The networks use no tensor-dependent Python control flow: tracing
    # without autograph's conversion is faster and gives the same graph.
    self._replica_step = tf.function(self._replica_step_impl,
                                     jit_compile=self.jit_compile,
                                     autograph=False)
    self.train_loop = tf.function(self._train_loop_impl)
    self._standing_statistics = tf.function(self._standing_statistics_impl)
    self._image_arrays = tf.function(self._image_arrays_impl, autograph=False)
    # One compiled copy of every live weight into its EMA copy (on a TPU,
    # one program instead of one per variable).
    tf.function(lambda: strategy.run(self._copy_live_to_ema),
                autograph=False)()

  def step(self) -> int:
    """The global step, read on the host."""
    return int(self.global_step.numpy())

  def learning_rate_factor(self, step):
    """The multiplier of every configured rate at `step` (a tensor)."""
    step = tf.cast(step, tf.float32)
    if self.learning_rate_decay == "constant":
      return tf.ones_like(step)
    start = float(self.decay_start_step)
    end = float(self.decay_end_step)
    return tf.clip_by_value((end - step) / (end - start), 0.0, 1.0)

  def _scheduled_rate(self, role: str):
    """`role`'s learning rate as a function of the global step (read by the
    optimiser at every update, inside the replica step): the configured
    rate times the decay, so a resumed run uses the configured rates."""
    rate = self.learning_rates[role]
    return lambda: rate * self.learning_rate_factor(self.global_step)

  def current_learning_rates(self) -> dict[str, float]:
    """The rates the optimisers use now, read on the host."""
    return {role: float(optimizer.learning_rate)
            for role, optimizer in self.optimizers.items()}

  def first_bad_step_value(self) -> int:
    """The earliest step with a non-finite metric on any local replica, or
    -1 (read on the host)."""
    steps = [int(v) for v in self.strategy.experimental_local_results(
        self.first_bad_step)]
    bad = [s for s in steps if s >= 0]
    return min(bad) if bad else -1

  def metric_keys(self) -> list[str]:
    """Names of the metrics one outer step returns."""
    scores = self._score_keys()
    keys = ["loss/d", "loss/eg"]
    for prefix in ("d", "eg"):
      keys += [f"loss_terms/{prefix}_{pair}_{k}"
               for pair in (losses.ENCODER_PAIRS, losses.GENERATOR_PAIRS)
               for k in scores]
    keys += [f"scores/{pair}_pairs/{k}"
             for pair in (losses.ENCODER_PAIRS, losses.GENERATOR_PAIRS)
             for k in scores]
    keys += [f"hinge_active/{pair}_{k}"
             for pair in (losses.ENCODER_PAIRS, losses.GENERATOR_PAIRS)
             for k in scores]
    keys += self._gradient_keys()
    if self.latent_regression_weight:
      keys.append("loss/latent_regression")
    if self.cycle_weight:
      keys.append("loss/cycle")
    return keys

  # -- checkpointing --------------------------------------------------------
  def checkpoint(self, **extra) -> tf.train.Checkpoint:
    """A checkpoint of networks, optimisers, EMA copies and the step."""
    items = {role: checkpoints.variables_checkpoint(net)
             for role, net in self.model.networks().items()}
    items.update({f"{role}_optimizer": checkpoints.optimizer_checkpoint(opt)
                  for role, opt in self.optimizers.items()})
    items.update({f"ema_{role}": checkpoints.variables_checkpoint(copy)
                  for role, copy in self.ema.items()})
    return tf.train.Checkpoint(global_step=self.global_step, **items, **extra)

  def ema_model(self) -> model_lib.BigBiGAN:
    """The BigBiGAN with the EMA copies of G and E (and the live D)."""
    return model_lib.BigBiGAN(
        generator=self.ema["generator"], discriminator=self.model.discriminator,
        prior=self.model.prior, encoder=self.ema.get("encoder"))

  # -- the step ---------------------------------------------------------------
  def _replica_step_impl(self, batches):
    """One outer step on this replica: d_steps D updates, one E+G update,
    then the step's bookkeeping. Every variable write of the step is here,
    in replica context: optimiser updates (all-reduced gradients, local
    apply), BN statistics and power-iteration state (replica-identical,
    local), the EMA copies, the global step, the non-finite flag and the
    metric sums. On a TPU this is the whole per-step program."""
    step = self.global_step.read_value()
    metrics = {}
    for k in range(self.d_steps):
      x = data.to_model_range(batches[k][data.IMAGE])
      for key, value in self._d_update(x, step, k).items():
        # Hinge activity: the mean over the step's D updates; the losses:
        # the last update's.
        if key.startswith("hinge_active/"):
          metrics[key] = metrics.get(key, 0.0) + value / self.d_steps
        else:
          metrics[key] = value
    metrics.update(self._eg_update(
        data.to_model_range(batches[-1][data.IMAGE]), step, self.d_steps))
    values = tf.stack([tf.cast(metrics[k], tf.float32)
                       for k in self._metric_keys])
    finite = tf.reduce_all(tf.math.is_finite(values))
    self.first_bad_step.assign(tf.where(
        tf.logical_and(tf.logical_not(finite), self.first_bad_step < 0),
        step, self.first_bad_step))
    self._metric_sums.assign_add(values)
    self.global_step.assign(step + 1)
    self._update_ema(step + 1)

  def _update_ema(self, step=None):
    """EMA = decay * EMA + (1 - decay) * live for G's and E's trainable
    weights (decay 0 before ema_start_step), then the live power-iteration
    state u into the copies. In the step: in replica context, each
    replica's own copies; eagerly (one device): directly."""
    step = self.global_step if step is None else step
    decay = tf.where(step < self.ema_start_step, 0.0, self.ema_decay)
    for role, copy in self.ema.items():
      live = self.model.networks()[role]
      for dst, src in zip(copy.trainable_variables,
                          live.trainable_variables):
        dst.assign(decay * dst + (1.0 - decay) * src)
    self._copy_power_iteration_state()

  def _copy_power_iteration_state(self):
    for dst, src in self._power_iteration_pairs:
      dst.assign(src)

  def _copy_live_to_ema(self):
    for role, copy in self.ema.items():
      for dst, src in zip(copy.weights, self.model.networks()[role].weights):
        dst.assign(src)

  def _one_step(self, iterator):
    batches = tuple(next(iterator) for _ in range(self.d_steps + 1))
    self.strategy.run(self._replica_step, args=(batches,))

  def _train_loop_impl(self, iterator, num_steps):
    """Runs `num_steps` outer steps; returns each metric's mean over them.

    The loop holds the input and the replicated step, nothing else; the
    metric sums are reset before it and reduced over replicas once after.
    """
    self._metric_sums.assign(tf.zeros([len(self._metric_keys)]),
                             read_value=False)
    for _ in tf.range(num_steps):
      self._one_step(iterator)
    totals = tf.unstack(self._metric_sums.read_value(),
                        num=len(self._metric_keys))
    count = tf.cast(tf.maximum(num_steps, 1), tf.float32)
    return {k: total / count for k, total in zip(self._metric_keys, totals)}

  # -- host actions' compiled parts ------------------------------------------
  def standing_statistics(self, iterator: Iterator, num_batches: int) -> None:
    """Recomputes the EMA copies' BN statistics on `num_batches` batches:
    one compiled function (resets, forward passes, power-iteration state)."""
    self._standing_statistics(iterator, tf.constant(num_batches, tf.int64))

  def _standing_statistics_impl(self, iterator, num_batches):
    copies = list(self.ema.values())
    self.strategy.run(lambda: layers.reset_standing_statistics(*copies))
    with layers.standing_statistics_mode(*copies):
      for k in tf.range(num_batches):
        self.strategy.run(self._standing_pass,
                          args=(next(iterator)[data.IMAGE], k))
    # Training-mode calls ran power iterations on the copies: undo them.
    self.strategy.run(self._copy_power_iteration_state)

  def _standing_pass(self, x, k):
    """One training-mode pass of the EMA copies on this replica's batch."""
    x = data.to_model_range(x)
    z, _ = self._latents(tf.constant(-1, tf.int64) - k, 0)
    self.ema["generator"](z, training=True)
    if "encoder" in self.ema:
      self.ema["encoder"](x, training=True)

  def image_arrays(self, z, x) -> dict[str, np.ndarray]:
    """The EMA networks' samples G(z) and, with an encoder, x pooled to G's
    size and its reconstructions G(E(x)): one compiled call on the
    strategy (the first replica's results)."""
    outputs = self._image_arrays(tf.convert_to_tensor(z),
                                 tf.convert_to_tensor(x))
    return {k: self.strategy.experimental_local_results(v)[0].numpy()
            for k, v in outputs.items()}

  def _image_arrays_impl(self, z, x):
    ema = self.ema_model()

    def replica_fn(z, x):
      outputs = {"samples": ema.generate(z, training=False)}
      if ema.encoder is not None:
        outputs["real"] = ema.pool_for_discriminator(x)
        outputs["reconstructions"] = ema.reconstruct(x, training=False)
      return outputs

    return self.strategy.run(replica_fn, args=(z, x))


@contextlib.contextmanager
def _precision_policy(mixed_precision: bool) -> Iterator[None]:
  """Mixed bfloat16 inside the block; the caller's policy after it."""
  previous = keras.mixed_precision.global_policy()
  if mixed_precision:
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    yield
  finally:
    keras.mixed_precision.set_global_policy(previous)


def _restore_or_start(checkpoint: tf.train.Checkpoint,
                      manager: tf.train.CheckpointManager,
                      trainer: Trainer) -> None:
  """Restores the latest checkpoint of the run, if there is one."""
  if not manager.latest_checkpoint:
    return
  try:
    checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
  except (AssertionError, ValueError) as error:
    raise ValueError(
        f"Cannot restore {manager.latest_checkpoint} into the current "
        f"config (a different architecture?): {error}") from error
  logging.info("Resumed from %s at step %d.", manager.latest_checkpoint,
               trainer.step())


def _inner_loop(trainer: Trainer, iterator: Iterator, num_steps: int,
                manager: tf.train.CheckpointManager) -> dict[str, float]:
  """Runs one compiled inner loop; returns its mean metrics on the host.

  Raises:
    NonFiniteLossError: a loss of the loop was NaN or infinite.
  """
  outputs = trainer.train_loop(iterator, tf.constant(num_steps))
  metrics = {k: float(v) for k, v in outputs.items()}
  metrics.update(actions.gradient_shares(metrics))
  bad = trainer.first_bad_step_value()
  if bad >= 0:
    raise NonFiniteLossError(
        f"Non-finite loss at step {bad}; training stopped without "
        f"saving. Last good checkpoint (intact): "
        f"{manager.latest_checkpoint or 'none'}.")
  return metrics


def _loop_length(steps_per_loop: int, remaining: int,
                 max_loop_seconds: Optional[float],
                 seconds_per_step: Optional[float]) -> int:
  """Steps of the next inner loop: at most steps_per_loop and the steps
  left, and with max_loop_seconds, what the last loop's rate fits in it
  (one step while no loop has been timed: the first includes tracing)."""
  num = min(steps_per_loop, remaining)
  if max_loop_seconds is None:
    return num
  if seconds_per_step is None:
    return 1
  return max(1, min(num, int(max_loop_seconds / max(seconds_per_step,
                                                    1e-9))))


# Errors a pod raises when a worker or its connection is lost for a while;
# the run restarts from its latest checkpoint on a new strategy.
TRANSIENT_ERRORS = (tf.errors.UnavailableError, tf.errors.AbortedError)


@gin.configurable("train", denylist=["model_dir", "strategy", "make_strategy",
                                     "take_over_stale_lease"])
def train(model_dir: str,
          strategy: Optional[tf.distribute.Strategy] = None,
          *,
          make_strategy: Optional[Callable[[], tf.distribute.Strategy]] = None,
          train_steps: int = gin.REQUIRED,
          batch_size: int = gin.REQUIRED,
          steps_per_loop: int = 100,
          checkpoint_every: int = 1000,
          keep_checkpoints: int = 5,
          image_every: int = 1000,
          eval_every: int = 0,
          standing_stats_batches: int = 10,
          standing_statistics_input: str = "separate",
          dataset_split: str = "train",
          checkpoint_input_pipeline: bool = True,
          mixed_precision: bool = False,
          max_loop_seconds: Optional[float] = 10.0,
          async_checkpoints: bool = True,
          transient_error_retries: int = 3,
          seed: int = 0,
          take_over_stale_lease: bool = False) -> dict[str, float]:
  """Trains the gin-bound BigBiGAN in `model_dir`, resuming if possible.

  Args:
    model_dir: checkpoints, summaries, images and configs go here (layout:
      bigbigan_tf.checkpoints).
    strategy: a tf.distribute strategy (default: make_strategy's, else the
      default strategy).
    make_strategy: makes a new strategy (e.g. connects to the TPU again and
      initialises it) for a restart after a transient error; None: restart
      on the same strategy.
    train_steps: total outer steps (each = d_steps D updates + one E+G update).
    batch_size: global batch size.
    steps_per_loop: outer steps per compiled inner loop (between host work),
      at most; see max_loop_seconds.
    max_loop_seconds: an inner loop runs at most about this long: its length
      is cut to the steps the previous loop's rate fits in this time (the
      first loop runs one step). SIGTERM is acted on between loops, so a
      preempted run saves a checkpoint at most this much training old, what
      ever steps_per_loop is. None: loops of steps_per_loop steps.
    checkpoint_every: steps between checkpoints (rounded up to whole loops).
    keep_checkpoints: checkpoints kept by the CheckpointManager.
    image_every: steps between image grids (EMA weights, standing stats).
    eval_every: steps between evaluations of the current (live) encoder with
      the gin-bound `evaluation` settings (linear probe from zero, kNN,
      reconstructions); 0 turns them off.
    standing_stats_batches: batches used to recompute EMA BN statistics.
    standing_statistics_input: where those batches come from: "separate",
      a second training pipeline (other seed) kept for them; "training",
      the training input itself (no second pipeline on the hosts, for
      ImageNet; the batches are then not trained on).
    dataset_split: split of the gin-bound `make_dataset` dataset.
    checkpoint_input_pipeline: save the input iterator in checkpoints, so a
      resumed run sees the same data as an uninterrupted one (turn off for
      large shuffle buffers: their contents are saved too).
    async_checkpoints: write checkpoints from a background thread while
      training goes on (each is complete before the next starts, and before
      train returns).
    transient_error_retries: times the run restarts, from its latest
      checkpoint and on a new strategy, after a pod's UnavailableError or
      AbortedError (a lost worker or connection); each restart is logged.
      The error is raised after that many.
    mixed_precision: mixed bfloat16 compute (for this call only: the global
      Keras policy is restored on return).
    seed: latent and data seed.
    take_over_stale_lease: take over model_dir's lease when its holder has
      stopped without releasing it (bigbigan-train --force; see
      bigbigan_tf.lease). A live holder is never displaced.

  Returns:
    The host-side metrics of the last inner loop (means over its steps);
    after a SIGTERM also "preempted_at_step", the step of the checkpoint it
    saved.

  Raises:
    NonFiniteLossError: a loss became NaN/inf (no checkpoint is written;
      the last good one stays intact).
    ValueError: model_dir belongs to another architecture; bad config.
    lease.LeaseHeldError: another trainer holds model_dir.
  """
  if standing_statistics_input not in STANDING_STATISTICS_INPUTS:
    raise ValueError(
        f"Unknown standing_statistics_input {standing_statistics_input!r}; "
        f"expected one of {', '.join(STANDING_STATISTICS_INPUTS)}.")
  if strategy is None:
    strategy = make_strategy() if make_strategy else tf.distribute.get_strategy()
  # One lease per job: the chief (the worker that writes checkpoints) holds it.
  holder = (lease_lib.Lease(model_dir)
            if getattr(strategy.extended, "should_checkpoint", True) else None)
  if holder is not None:
    holder.acquire(take_over_stale=take_over_stale_lease)
  settings = dict(train_steps=train_steps, batch_size=batch_size,
                  steps_per_loop=steps_per_loop,
                  checkpoint_every=checkpoint_every,
                  keep_checkpoints=keep_checkpoints, image_every=image_every,
                  eval_every=eval_every,
                  standing_stats_batches=standing_stats_batches,
                  standing_statistics_input=standing_statistics_input,
                  dataset_split=dataset_split,
                  checkpoint_input_pipeline=checkpoint_input_pipeline,
                  mixed_precision=mixed_precision,
                  max_loop_seconds=max_loop_seconds,
                  async_checkpoints=async_checkpoints, seed=seed)
  try:
    restarts = 0
    while True:
      try:
        return _train(model_dir, strategy, holder, **settings)
      except TRANSIENT_ERRORS as error:
        if restarts >= transient_error_retries:
          raise
        restarts += 1
        logging.warning(
            "%s: %s. Restarting from the latest checkpoint (%s) on a new "
            "strategy: restart %d of at most %d.", type(error).__name__,
            str(error).splitlines()[0] if str(error) else "",
            checkpoints.latest_checkpoint(model_dir) or "none, from step 0",
            restarts, transient_error_retries)
        if make_strategy is not None:
          strategy = make_strategy()
  finally:
    if holder is not None:
      holder.release()


def _train(model_dir: str, strategy: tf.distribute.Strategy,
           holder: Optional[lease_lib.Lease], *, train_steps: int,
           batch_size: int, steps_per_loop: int, checkpoint_every: int,
           keep_checkpoints: int, image_every: int, eval_every: int,
           standing_stats_batches: int, standing_statistics_input: str,
           dataset_split: str,
           checkpoint_input_pipeline: bool, mixed_precision: bool,
           max_loop_seconds: Optional[float], async_checkpoints: bool,
           seed: int) -> dict[str, float]:
  """`train`'s work, with model_dir's lease held (None: not the chief)."""
  with _precision_policy(mixed_precision):
    with strategy.scope():
      model = model_lib.configured_bigbigan()
      trainer = Trainer(model, strategy, batch_size)
    checkpoints.check_architecture(model_dir, model.networks())
    with tf.io.gfile.GFile(
        os.path.join(model_dir, checkpoints.CONFIG_FILE), "w") as f:
      f.write(gin.config_str())
    actions.write_class_index(model_dir, dataset_split)

    make_iterator = lambda data_seed: iter(data.distributed_dataset(
        strategy, batch_size, split=dataset_split,
        resolution=model.encoder_resolution, training=True, seed=data_seed))
    iterator = make_iterator(seed)
    extra = {"data_iterator": iterator} if checkpoint_input_pipeline else {}
    checkpoint = trainer.checkpoint(**extra)
    manager = tf.train.CheckpointManager(
        checkpoint, os.path.join(model_dir, checkpoints.CHECKPOINT_DIR),
        keep_checkpoints, step_counter=trainer.global_step)
    _restore_or_start(checkpoint, manager, trainer)
    saver = checkpoints.CheckpointWriter(manager, async_checkpoints)

    writer = tf.summary.create_file_writer(model_dir)
    standing_iterator = (iterator if standing_statistics_input == "training"
                         else make_iterator(seed + 1))
    fixed = actions.fixed_inputs(model, seed, dataset_split)
    progress = actions.Progress(trainer, train_steps)
    metrics: dict[str, float] = {}
    wrote_config = False
    try:
      with actions.sigterm_flag() as preempted:
        seconds_per_step = None
        while trainer.step() < train_steps and not preempted:
          num = _loop_length(steps_per_loop, train_steps - trainer.step(),
                             max_loop_seconds, seconds_per_step)
          loop_start = time.time()
          metrics = _inner_loop(trainer, iterator, num, manager)
          seconds = time.time() - loop_start
          seconds_per_step = seconds / num
          if holder is not None:
            holder.refresh()
          metrics["images_per_second"] = progress.report(metrics, num,
                                                         seconds)
          step = trainer.step()
          # Actions between inner loops.
          actions.write_scalars(writer, trainer, metrics, step)
          if not wrote_config:
            actions.write_operative_config(writer, model_dir, step)
            wrote_config = True
          due = lambda every: step % every < num or step >= train_steps
          if due(image_every):
            trainer.standing_statistics(standing_iterator,
                                        standing_stats_batches)
            actions.write_images(writer, trainer, fixed, model_dir, step)
          if eval_every and due(eval_every):
            actions.evaluate_live(writer, trainer, step)
          if due(checkpoint_every):
            saver.save(step)
        if preempted:
          step = trainer.step()
          saver.save(step)
          path = saver.wait()
          logging.warning("SIGTERM received: preempted at step %d; saved %s; "
                          "exiting.", step, path)
          metrics["preempted_at_step"] = float(step)
        saver.wait()
    finally:
      writer.flush()
      saver.close()
  return metrics


