"""Tests of the optional E+G terms: latent regression and ALICE's cycle.

Each test builds trainers from one set of weights and runs one E+G update
(`Trainer._eg_update`) eagerly on the same batch and latents, so that the
updates differ only by the terms switched on.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from bigbigan_tf import config
from bigbigan_tf import layers
from bigbigan_tf import training
from bigbigan_tf.networks import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE_GIN = os.path.join(ROOT, "gin", "smoke.gin")
BATCH = 8
STEP = tf.constant(3, tf.int64)


def _trainer(*bindings):
  config.parse([SMOKE_GIN], ["trainer.gradient_diagnostics = False",
                             *bindings])
  strategy = tf.distribute.get_strategy()
  with strategy.scope():
    return training.Trainer(config.build_model(), strategy, BATCH)


def _copy_weights(dst_trainer, src_trainer):
  for role, net in src_trainer.model.networks().items():
    for dst, src in zip(dst_trainer.model.networks()[role].weights,
                        net.weights):
      dst.assign(src.numpy())


def _images():
  return tf.random.stateless_uniform([BATCH, 32, 32, 3], [5, 6], -1.0, 1.0)


def _weights(trainer, role, trainable=True):
  net = trainer.model.networks()[role]
  variables = net.trainable_variables if trainable else [
      v for v in net.weights if "moving" in v.path]
  return {v.path: v.numpy().copy() for v in variables}


@pytest.fixture(scope="module")
def updated():
  """One E+G update of the same weights under four settings."""
  settings = {
      "default": (),
      "zeros": ("trainer.latent_regression_weight = 0.0",
                "trainer.cycle_weight = 0.0"),
      "latent": ("trainer.latent_regression_weight = 1.0",),
      "latent_moving": ("trainer.latent_regression_weight = 1.0",
                        "trainer.latent_regression_statistics = 'moving'"),
      "latent_real": ("trainer.latent_regression_weight = 1.0",
                      "trainer.latent_regression_statistics = 'real'"),
      "cycle": ("trainer.cycle_weight = 1.0",),
  }
  trainers = {name: _trainer(*bindings) for name, bindings in settings.items()}
  reference = trainers["default"]
  for trainer in trainers.values():
    if trainer is not reference:
      _copy_weights(trainer, reference)
  before = {role: _weights(reference, role) for role in
            ("generator", "encoder", "discriminator")}
  results = {}
  for name, trainer in trainers.items():
    metrics = trainer._eg_update(_images(), STEP, 1)  # pylint: disable=protected-access
    results[name] = dict(
        metrics={k: float(v) for k, v in metrics.items()},
        weights={role: _weights(trainer, role) for role in
                 ("generator", "encoder", "discriminator")},
        moving={role: _weights(trainer, role, trainable=False)
                for role in ("generator", "encoder")},
        keys=trainer.metric_keys())
  results["before"] = before
  return results


def _assert_same(a, b, what):
  assert a.keys() == b.keys(), what
  for name in a:
    np.testing.assert_array_equal(a[name], b[name], err_msg=f"{what}: {name}")


def _assert_close(a, b, what, before):
  """The updates a - before and b - before agree within 1% of the largest
  step (Adam's first step is about the learning rate wherever a gradient
  is not zero, so rounding in a gradient moves it by its whole size only
  where that gradient is rounding itself)."""
  assert a.keys() == b.keys(), what
  for name in a:
    step_a, step_b = a[name] - before[name], b[name] - before[name]
    tolerance = 1e-2 * max(np.max(np.abs(step_b)), 1e-12)
    np.testing.assert_allclose(step_a, step_b, rtol=0, atol=tolerance,
                               err_msg=f"{what}: {name}")


def _differs(a, b) -> bool:
  return any(not np.array_equal(a[name], b[name]) for name in a)


def test_both_terms_off_is_the_papers_update(updated):
  default, zeros = updated["default"], updated["zeros"]
  assert zeros["keys"] == default["keys"]
  assert "loss/latent_regression" not in default["keys"]
  assert "loss/cycle" not in default["keys"]
  assert zeros["metrics"] == default["metrics"]
  for role in ("generator", "encoder", "discriminator"):
    _assert_same(zeros["weights"][role], default["weights"][role], role)
    # The update moved the weights: the equality above says something.
    assert role == "discriminator" or _differs(
        default["weights"][role], updated["before"][role]), role


@pytest.mark.parametrize("setting", ["latent", "latent_moving", "latent_real"])
def test_latent_regression_changes_only_the_encoders_update(updated,
                                                            setting):
  default, latent = updated["default"], updated[setting]
  # "real" encodes x in a pass over [x; G(z)] whose batch norm is not the
  # fused op: E(x) agrees to float rounding, not bit for bit.
  def same(a, b, what, before=None):
    if setting != "latent_real":
      _assert_same(a, b, what)
    elif before is None:
      _assert_close(a, b, what, {k: np.zeros_like(v) for k, v in b.items()})
    else:
      _assert_close(a, b, what, before)
  # G(z) is held constant: G's update is the paper's.
  same(latent["weights"]["generator"], default["weights"]["generator"],
       "generator", updated["before"]["generator"])
  _assert_same(latent["weights"]["discriminator"],
               default["weights"]["discriminator"], "discriminator")
  assert _differs(latent["weights"]["encoder"], default["weights"]["encoder"])
  if setting == "latent_real":  # By more than the rounding allowed above.
    with pytest.raises(AssertionError):
      _assert_close(latent["weights"]["encoder"],
                    default["weights"]["encoder"],
                    "encoder", updated["before"]["encoder"])
  # E saw G(z) with its batch moments, its moving statistics or the real
  # rows' moments; in each case E's statistics come from the real images
  # only, and E(x) is unchanged (so are D's scores and loss/eg).
  same(latent["moving"]["encoder"], default["moving"]["encoder"],
       "encoder moving statistics")
  np.testing.assert_allclose(latent["metrics"]["loss/eg"],
                             default["metrics"]["loss/eg"],
                             rtol=0 if setting != "latent_real" else 1e-5)
  assert "loss/latent_regression" in latent["keys"]


def test_cycle_term_changes_the_encoder_and_generator_updates(updated):
  default, cycle = updated["default"], updated["cycle"]
  assert _differs(cycle["weights"]["generator"],
                  default["weights"]["generator"])
  assert _differs(cycle["weights"]["encoder"], default["weights"]["encoder"])
  _assert_same(cycle["weights"]["discriminator"],
               default["weights"]["discriminator"], "discriminator")
  # G's second training-mode pass (on E's latents) leaves its statistics.
  _assert_same(cycle["moving"]["generator"], default["moving"]["generator"],
               "generator moving statistics")
  assert "loss/cycle" in cycle["keys"]


def test_term_values_are_the_stated_means():
  """With learning rates 0 nothing moves, so the terms can be recomputed:
  latent regression = batch mean of ||mu_E(G(z)) - z||^2 summed over z's
  dimensions; cycle = mean over examples and pixels of (x - G(z_hat))^2."""
  trainer = _trainer("trainer.latent_regression_weight = 2.0",
                     "trainer.cycle_weight = 0.5",
                     "trainer.learning_rate = 0.0")
  model = trainer.model
  x = _images()
  z, eps = trainer._latents(STEP, 1)  # pylint: disable=protected-access
  # Training-mode calls run G's power iterations: the step starts from the
  # same state u as these calls.
  power_state = [(v, v.numpy()) for v in model.generator.weights
                 if "sn_u" in v.path]
  with layers.moving_statistics_frozen(model.generator, model.encoder):
    x_hat = model.generate(z, training=True)
    mu = model.encode(x_hat, training=True)[common.Z_MEAN]
    z_hat = model.encode(x, training=True, epsilon=eps)[common.Z_SAMPLE]
    reconstruction = model.generate(z_hat, training=True)
  latent = np.mean(np.sum(np.square(mu.numpy() - z.numpy()), axis=1))
  cycle = np.mean(np.square(x.numpy() - reconstruction.numpy()))
  for variable, value in power_state:
    variable.assign(value)

  metrics = trainer._eg_update(x, STEP, 1)  # pylint: disable=protected-access

  # The metrics are the terms before their weights.
  np.testing.assert_allclose(float(metrics["loss/latent_regression"]), latent,
                             rtol=1e-4)
  np.testing.assert_allclose(float(metrics["loss/cycle"]), cycle, rtol=1e-4)


def test_latent_regression_with_real_statistics_normalises_g_by_real_moments():
  """With "real", the term is E's error on G(z) normalised at every batch
  norm by the moments of the real batch: E in inference mode whose
  statistics are exactly that batch's moments (one standing-statistics
  pass over it)."""
  trainer = _trainer("trainer.latent_regression_weight = 1.0",
                     "trainer.latent_regression_statistics = 'real'",
                     "trainer.learning_rate = 0.0")
  model = trainer.model
  x = _images()
  z, eps = trainer._latents(STEP, 1)  # pylint: disable=protected-access
  state = [(v, v.numpy()) for v in model.generator.weights + model.encoder.weights
           if "sn_u" in v.path or "moving" in v.path or "standing" in v.path]
  with layers.moving_statistics_frozen(model.generator):
    x_hat = model.generate(z, training=True)
  with layers.accumulating_standing_stats(model.encoder):
    model.encode(x, training=True, epsilon=eps)
  mu = model.encode(x_hat, training=False)[common.Z_MEAN]
  expected = np.mean(np.sum(np.square(mu.numpy() - z.numpy()), axis=1))
  # Outside the step nothing is the real rows' alone: the plain training-mode
  # pass over [x; G(z)] normalises with both, and differs.
  both = model.encode(tf.concat([x, x_hat], 0), training=True,
                      epsilon=tf.concat([eps, eps], 0))[common.Z_MEAN][BATCH:]
  mixed = np.mean(np.sum(np.square(both.numpy() - z.numpy()), axis=1))
  for variable, value in state:
    variable.assign(value)

  metrics = trainer._eg_update(x, STEP, 1)  # pylint: disable=protected-access

  np.testing.assert_allclose(float(metrics["loss/latent_regression"]),
                             expected, rtol=1e-3)
  assert abs(mixed - expected) > 1e-2 * expected


def test_latent_regression_with_moving_statistics_is_inference_mode_e():
  """With "moving", the term is E's inference-mode error on G(z)."""
  trainer = _trainer("trainer.latent_regression_weight = 1.0",
                     "trainer.latent_regression_statistics = 'moving'",
                     "trainer.learning_rate = 0.0")
  model = trainer.model
  x = _images()
  z, eps = trainer._latents(STEP, 1)  # pylint: disable=protected-access
  state = [(v, v.numpy()) for v in model.generator.weights + model.encoder.weights
           if "sn_u" in v.path or "moving" in v.path]
  with layers.moving_statistics_frozen(model.generator):
    x_hat = model.generate(z, training=True)
  # The step encodes the real batch first (folding it into E's moving
  # statistics), then G(z) in inference mode with those statistics.
  model.encode(x, training=True, epsilon=eps)
  mu = model.encode(x_hat, training=False)[common.Z_MEAN]
  expected = np.mean(np.sum(np.square(mu.numpy() - z.numpy()), axis=1))
  for variable, value in state:
    variable.assign(value)

  metrics = trainer._eg_update(x, STEP, 1)  # pylint: disable=protected-access

  np.testing.assert_allclose(float(metrics["loss/latent_regression"]),
                             expected, rtol=1e-4)


@pytest.mark.parametrize("binding, match", [
    ("trainer.latent_regression_statistics = 'ema'",
     "latent_regression_statistics must be one of"),
    ("trainer.latent_regression_weight = -1.0", "latent_regression_weight"),
    ("trainer.cycle_weight = -0.5", "cycle_weight"),
    ("trainer.latent_regression_warmup_steps = -1",
     "latent_regression_warmup_steps must be an integer >= 0"),
    ("trainer.latent_regression_warmup_steps = 2.5",
     "latent_regression_warmup_steps must be an integer >= 0"),
    ("trainer.latent_regression_warmup_steps = None",
     "latent_regression_warmup_steps must be an integer >= 0"),
])
def test_negative_weights_are_refused(binding, match):
  with pytest.raises(ValueError, match=match):
    _trainer(binding)


def test_warmup_ramps_the_latent_regression_weight():
  """With warm-up N, E's update at global step k is the update with weight
  lambda * min(1, (k + 1) / N) and no warm-up."""
  def encoder_after(step, *bindings):
    trainer = _trainer("trainer.latent_regression_statistics = 'real'",
                       *bindings)
    _copy_weights(trainer, reference)
    trainer._eg_update(_images(), tf.constant(step, tf.int64), 1)  # pylint: disable=protected-access
    return _weights(trainer, "encoder")

  reference = _trainer()
  warm = ("trainer.latent_regression_weight = 2.0",
          "trainer.latent_regression_warmup_steps = 4")
  for step, weight in ((0, 0.5), (1, 1.0), (3, 2.0), (9, 2.0)):
    _assert_same(encoder_after(step, *warm),
                 encoder_after(step, f"trainer.latent_regression_weight = {weight}"),
                 f"step {step}")
  # The ramp matters: at step 0 the full weight gives another update.
  assert _differs(encoder_after(0, *warm),
                  encoder_after(0, "trainer.latent_regression_weight = 2.0"))


def test_real_statistics_keep_the_latent_gradient_diagnostics():
  """With "real", z_hat is a slice of the pass over [x; G(z)]: the
  diagnostics' gradients of the scores with respect to it are those of the
  separate pass ("batch"), to rounding."""
  reference = _trainer()
  results = {}
  for mode in ("batch", "real"):
    trainer = _trainer("trainer.gradient_diagnostics = True",
                       "trainer.latent_regression_weight = 1.0",
                       f"trainer.latent_regression_statistics = '{mode}'")
    _copy_weights(trainer, reference)
    metrics = trainer._eg_update(_images(), STEP, 1)  # pylint: disable=protected-access
    results[mode] = {k: float(v) for k, v in metrics.items()
                     if k.startswith("grad_sq/")}
  assert results["batch"] and results["batch"].keys() == results["real"].keys()
  for key, value in results["batch"].items():
    assert value > 0, key
    np.testing.assert_allclose(results["real"][key], value, rtol=1e-4,
                               err_msg=key)


def test_real_statistics_refuse_other_batch_norms_in_e():
  """An encoder with a Keras BatchNormalization inside (the library's have
  none: one is slipped into the layer list E reports)."""
  config.parse([SMOKE_GIN], ["trainer.latent_regression_weight = 1.0",
                             "trainer.latent_regression_statistics = 'real'"])
  model = config.build_model()
  own = model.encoder._flatten_layers  # pylint: disable=protected-access
  other = keras.layers.BatchNormalization(name="other_norm")
  object.__setattr__(model.encoder, "_flatten_layers",
                     lambda *args, **kwargs: [*own(*args, **kwargs), other])
  with pytest.raises(ValueError, match="CrossReplicaBatchNorm.*other_norm"):
    training.Trainer(model, tf.distribute.get_strategy(), BATCH)


@pytest.mark.parametrize("count", [0, 2.5, True, "2"])
def test_reference_moments_refuse_bad_counts(count):
  with pytest.raises(ValueError, match="count, a Python int >= 1"):
    with layers.reference_moments(keras.layers.Dense(2), count=count):
      pass


def test_terms_need_an_encoder():
  with pytest.raises(ValueError, match="needs an encoder"):
    _trainer("bigbigan.encoder = None",
             "discriminator.use_score_z = False",
             "discriminator.use_score_xz = False",
             "trainer.latent_regression_weight = 1.0")
