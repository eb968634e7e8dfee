"""Tests of the trainer: gradient routing, replicas, workers, XLA, resumption,
preemption, non-finite losses and bad configurations."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from bigbigan_tf import config
from bigbigan_tf import losses
from bigbigan_tf import restore
from bigbigan_tf import training
from bigbigan_tf.networks import common

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import conftest  # pylint: disable=g-import-not-at-top,wrong-import-position
import training_worker  # pylint: disable=g-import-not-at-top,wrong-import-position

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "training_worker.py")
SMOKE_GIN = os.path.join(ROOT, "gin", "smoke.gin")


def _trainer(strategy, global_batch=8, bindings=()):
  config.parse([SMOKE_GIN], list(bindings))
  with strategy.scope():
    model = config.build_model()
    return training.Trainer(model, strategy, global_batch)


@pytest.fixture
def eager_functions():
  """Runs tf.functions eagerly: tracing a step costs more than running it."""
  tf.config.run_functions_eagerly(True)
  yield
  tf.config.run_functions_eagerly(False)


def _weights(trainer):
  return {k: v for k, v in training_worker.all_weights(trainer).items()}


def test_encoder_and_generator_get_gradients_only_through_their_pairs():
  trainer = _trainer(tf.distribute.get_strategy())
  model = trainer.model
  x = tf.random.uniform([4, 32, 32, 3], -1, 1, seed=1)
  z = model.prior.sample(4, seed=[1, 2])
  g_vars = model.generator.trainable_variables
  e_vars = model.encoder.trainable_variables
  with tf.GradientTape(persistent=True) as tape:
    x_hat = model.generate(z, training=True)
    z_hat = model.encode(x, training=True)["z_sample"]
    enc_scores = model.discriminate(x, z_hat, training=True)
    gen_scores = model.discriminate(x_hat, z, training=True)
    enc_loss, gen_loss, _ = losses.encoder_generator_loss(
        {k: v for k, v in enc_scores.items() if k in common.SCORE_KEYS},
        {k: v for k, v in gen_scores.items() if k in common.SCORE_KEYS})
    enc_loss, gen_loss = tf.reduce_mean(enc_loss), tf.reduce_mean(gen_loss)
  assert all(g is None for g in tape.gradient(enc_loss, g_vars))
  assert all(g is None for g in tape.gradient(gen_loss, e_vars))
  assert any(g is not None and float(tf.reduce_sum(tf.abs(g))) > 0
             for g in tape.gradient(enc_loss, e_vars))
  assert any(g is not None and float(tf.reduce_sum(tf.abs(g))) > 0
             for g in tape.gradient(gen_loss, g_vars))


def test_d_updates_change_only_d_and_eg_update_only_e_and_g():
  trainer = _trainer(tf.distribute.get_strategy(), bindings=[
      "trainer.d_steps = 1"])
  trainable = lambda role: [v.numpy().copy() for v in
                            trainer.model.networks()[role].trainable_variables]
  before = {r: trainable(r) for r in ("generator", "encoder", "discriminator")}
  x = tf.random.uniform([8, 32, 32, 3], -1, 1, seed=3)
  step = tf.constant(0, tf.int64)
  trainer._d_update(x, step, 0)  # pylint: disable=protected-access
  changed = lambda r, ref: any(not np.array_equal(a, b) for a, b in zip(
      trainable(r), ref[r]))
  assert changed("discriminator", before)
  assert not changed("generator", before) and not changed("encoder", before)
  after_d = {r: trainable(r) for r in before}
  trainer._eg_update(x, step, 1)  # pylint: disable=protected-access
  assert changed("generator", after_d) and changed("encoder", after_d)
  assert not changed("discriminator", after_d)


def _run_steps(strategy, reference, steps=2, global_batch=8):
  """`steps` steps from the weights of `reference` (one D step per step:
  the replica arithmetic is the same for any number; without the gradient
  diagnostics, replica means like every other metric, tested in
  test_small_data.py)."""
  trainer = _trainer(strategy, global_batch, [
      "trainer.d_steps = 1", "trainer.gradient_diagnostics = False"])
  for role, net in reference.model.networks().items():
    for dst, src in zip(trainer.model.networks()[role].weights,
                        net.weights):
      dst.assign(src.numpy())
  for role, net in reference.ema.items():
    for dst, src in zip(trainer.ema[role].weights, net.weights):
      dst.assign(src.numpy())
  dataset = strategy.distribute_datasets_from_function(
      lambda ctx: training_worker.synthetic_dataset(global_batch, ctx))
  metrics = trainer.train_loop(iter(dataset), tf.constant(steps))
  return {k: float(v) for k, v in metrics.items()}, _weights(trainer)


@pytest.mark.slow
def test_two_replicas_match_one_device():
  """Same global batch and latents: 2 replicas == 1 device (rtol 1e-3)."""
  tf.keras.utils.set_random_seed(1)
  # Same global weights on both runs: copied from one fixed-seed build.
  reference = _trainer(tf.distribute.get_strategy(), 8)
  initial = _weights(reference)
  one_metrics, one_weights = _run_steps(tf.distribute.get_strategy(),
                                        reference)
  two_metrics, two_weights = _run_steps(conftest.two_replica_strategy(),
                                        reference)
  for key, value in one_metrics.items():
    np.testing.assert_allclose(two_metrics[key], value, rtol=1e-3, atol=1e-4,
                               err_msg=key)
  assert one_weights.keys() == two_weights.keys()
  worst = max(float(np.max(np.abs(one_weights[k] - two_weights[k])))
              for k in one_weights)
  assert worst < 1e-3, worst
  # The steps did something: every network moved away from its initial
  # weights (by far more than the replicas differ).
  for role in ("generator", "encoder", "discriminator"):
    moved = max(float(np.max(np.abs(one_weights[k] - initial[k])))
                for k in one_weights if k.startswith(f"{role}/"))
    assert moved > 10 * worst and moved > 1e-4, (role, moved, worst)


def _free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_multi_worker_training_keeps_workers_identical(tmp_path):
  ports = [_free_port(), _free_port()]
  cluster = {"worker": [f"localhost:{p}" for p in ports]}
  procs = []
  for index in range(2):
    env = dict(os.environ, TF_CONFIG=json.dumps(
        {"cluster": cluster, "task": {"type": "worker", "index": index}}))
    env["CUDA_VISIBLE_DEVICES"] = ""
    procs.append(subprocess.Popen(
        [sys.executable, WORKER, "multi_worker", str(tmp_path / f"w{index}.npz")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
  outputs = [p.communicate(timeout=420)[0] for p in procs]
  for p, out in zip(procs, outputs):
    assert p.returncode == 0, out[-3000:]
  w0 = np.load(tmp_path / "w0.npz")
  w1 = np.load(tmp_path / "w1.npz")
  assert int(w0["__step"]) == int(w1["__step"]) == 3
  assert set(w0.files) == set(w1.files)
  for key in w0.files:
    np.testing.assert_array_equal(w0[key], w1[key], err_msg=key)
  # And they computed what one device computes from the same initial
  # weights on the same global batches (as two local replicas do).
  config.parse([SMOKE_GIN], training_worker.MULTI_WORKER_BINDINGS)
  strategy = tf.distribute.get_strategy()
  with strategy.scope():
    trainer = training.Trainer(config.build_model(), strategy, 8)
  for role, net in list(trainer.model.networks().items()) + [
      (f"ema_{r}", n) for r, n in trainer.ema.items()]:
    for variable in net.weights:
      variable.assign(w0[f"{training_worker.INITIAL}{role}/{variable.path}"])
  trainer.train_loop(iter(training_worker.synthetic_dataset(8)),
                     tf.constant(3))
  one = training_worker.all_weights(trainer)
  worst = max(float(np.max(np.abs(one[k] - w0[k]))) for k in one)
  assert worst < 1e-3, worst
  moved = max(float(np.max(np.abs(w0[k] - w0[training_worker.INITIAL + k])))
              for k in one)
  assert moved > 10 * worst, (moved, worst)


@pytest.mark.slow
def test_full_step_compiles_with_xla():
  """The replica step (every update, D's and E+G's) is one XLA cluster: a
  jit_compile=True function fails at its first call if any op cannot be
  compiled, as on a TPU."""
  trainer = _trainer(tf.distribute.get_strategy(),
                     bindings=["trainer.jit_compile = True",
                               "trainer.d_steps = 1",
                               "trainer.gradient_diagnostics = False"])
  strategy = tf.distribute.get_strategy()
  metrics = trainer.train_loop(
      iter(strategy.distribute_datasets_from_function(
          lambda ctx: training_worker.synthetic_dataset(8, ctx))),
      tf.constant(2))
  assert all(np.isfinite(float(v)) for v in metrics.values())
  assert trainer.step() == 2
  # The step that ran was the XLA-compiled one.
  assert trainer._replica_step._jit_compile  # pylint: disable=protected-access


def _train_process(model_dir, data_dir, steps, *bindings, wait=True):
  cmd = [sys.executable, WORKER, "train", str(model_dir), data_dir,
         str(steps), *bindings]
  proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  if not wait:
    return proc
  out = proc.communicate(timeout=600)[0]
  return proc.returncode, out


def _checkpoint_values(model_dir):
  path = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
  reader = tf.train.load_checkpoint(path)
  names = [n for n in reader.get_variable_to_shape_map()
           if "save_counter" not in n and "data_iterator" not in n]
  return path, {n: reader.get_tensor(n) for n in names}


def _roll_back(model_dir, step):
  """Makes checkpoint `step` the latest, as if the run had stopped there."""
  directory = os.path.join(model_dir, "checkpoints")
  state = tf.train.get_checkpoint_state(directory)
  kept = [p for p in state.all_model_checkpoint_paths
          if int(p.rsplit("-", 1)[1]) <= step]
  for path in state.all_model_checkpoint_paths:
    if path not in kept:
      for name in tf.io.gfile.glob(path + ".*"):
        tf.io.gfile.remove(name)
  tf.compat.v1.train.update_checkpoint_state(directory, kept[-1],
                                             all_model_checkpoint_paths=kept)


@pytest.mark.slow
def test_resuming_in_a_fresh_process_is_deterministic(tmp_path, data_dir):
  code, out = _train_process(tmp_path / "straight", data_dir, 4)
  assert code == 0, out[-3000:]
  # The same run stopped after step 2 (its checkpoints 1 and 2 are the
  # straight run's), then resumed to step 4 in a new process.
  shutil.copytree(tmp_path / "straight", tmp_path / "resumed")
  _roll_back(str(tmp_path / "resumed"), 2)
  assert _checkpoint_values(tmp_path / "resumed")[0].endswith("ckpt-2")
  code, out = _train_process(tmp_path / "resumed", data_dir, 4)
  assert code == 0, out[-3000:]
  assert "Resumed from" in out and "ckpt-2" in out
  path_a, straight = _checkpoint_values(tmp_path / "straight")
  path_b, resumed = _checkpoint_values(tmp_path / "resumed")
  assert path_a.endswith("ckpt-4") and path_b.endswith("ckpt-4")
  assert straight.keys() == resumed.keys()
  assert len(straight) > 100
  for name, value in straight.items():
    np.testing.assert_array_equal(resumed[name], value, err_msg=name)


@pytest.mark.slow
def test_sigterm_writes_a_checkpoint_within_seconds_and_the_rerun_resumes(
    tmp_path, data_dir):
  """With 10,000 steps per loop configured, loops are still cut to about
  train.max_loop_seconds, so SIGTERM after the first step is acted on
  within seconds: a checkpoint at the step reached, exit 0 with "preempted
  at step N" well within a preempted VM's 30 s; a rerun resumes there."""
  model_dir = tmp_path / "preempted"
  proc = _train_process(model_dir, data_dir, 10_000,
                        "train.steps_per_loop = 10000",
                        "train.checkpoint_every = 100000", wait=False)
  deadline = time.time() + 300
  lines = []
  while time.time() < deadline:
    line = proc.stdout.readline()
    lines.append(line)
    if re.search(r"step \d+/10000", line):
      break
    assert line or proc.poll() is None, "".join(lines)[-3000:]
  signalled = time.time()
  proc.send_signal(signal.SIGTERM)
  out = "".join(lines) + proc.communicate(timeout=60)[0]
  exit_seconds = time.time() - signalled
  assert proc.returncode == 0, out[-3000:]
  assert exit_seconds < 30, exit_seconds
  match = re.search(r"preempted at step (\d+)", out)
  assert match, out[-3000:]
  step = int(match.group(1))
  assert 1 <= step < 10_000
  path, _ = _checkpoint_values(model_dir)
  assert path.endswith(f"ckpt-{step}")
  code, out = _train_process(model_dir, data_dir, step + 1,
                             "train.steps_per_loop = 10000")
  assert code == 0, out[-3000:]
  assert f"ckpt-{step} at step {step}" in out
  path, _ = _checkpoint_values(model_dir)
  assert path.endswith(f"ckpt-{step + 1}")


@pytest.mark.parametrize("args, expected", [
    # steps_per_loop, remaining, max_loop_seconds, seconds_per_step
    ((500, 10_000, None, 0.5), 500),
    ((500, 10_000, 10.0, None), 1),
    ((500, 10_000, 10.0, 0.5), 20),
    ((500, 10_000, 10.0, 0.001), 500),
    ((500, 7, 10.0, 0.001), 7),
    ((500, 10_000, 10.0, 60.0), 1),
])
def test_inner_loops_are_cut_to_the_time_limit(args, expected):
  assert training._loop_length(*args) == expected  # pylint: disable=protected-access


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(
    tmp_path, data_dir, smoke_run_dir):
  model_dir = str(tmp_path / "nan")
  shutil.copytree(smoke_run_dir, model_dir)
  good, before = _checkpoint_values(model_dir)
  assert good.endswith("ckpt-2")
  with pytest.raises(training.NonFiniteLossError,
                     match=r"Non-finite loss at step 2;.*ckpt-2"):
    training_worker.train(model_dir, data_dir, 5,
                          "trainer.learning_rate = 1e999",
                          "trainer.d_learning_rate = 1e999")
  latest, after = _checkpoint_values(model_dir)
  assert latest == good
  for name, value in before.items():
    np.testing.assert_array_equal(after[name], value)


def test_model_dir_of_another_architecture_is_refused(tmp_path, data_dir,
                                                      smoke_run_dir):
  model_dir = str(tmp_path / "arch")
  shutil.copytree(smoke_run_dir, model_dir)
  with pytest.raises(ValueError, match="different architecture.*generator"):
    training_worker.train(model_dir, data_dir, 3, "generator.ch = 4")
  # Nothing was lost: the run's checkpoint and config are untouched.
  assert _checkpoint_values(model_dir)[0].endswith("ckpt-2")
  assert (open(os.path.join(model_dir, "config.gin")).read() ==
          open(os.path.join(smoke_run_dir, "config.gin")).read())


def test_unknown_dataset_and_empty_image_dir_are_clear_errors(tmp_path):
  with pytest.raises(ValueError, match="no_such_dataset"):
    training_worker.train(str(tmp_path / "a"), str(tmp_path), 1,
                          "make_dataset.name = 'no_such_dataset'")
  empty = tmp_path / "empty_images"
  empty.mkdir()
  with pytest.raises(ValueError, match="empty_images"):
    training_worker.train(str(tmp_path / "b"), str(tmp_path), 1,
                          "make_dataset.name = 'image_dir'",
                          f"make_dataset.image_dir = '{empty}'")


def test_gin_binding_to_unknown_parameter_is_a_clear_error():
  with pytest.raises(ValueError, match="trainer.*d_stepz"):
    config.parse([SMOKE_GIN], ["trainer.d_stepz = 3"])


def test_training_writes_summaries_images_and_configs(smoke_run_dir):
  model_dir = smoke_run_dir
  files = set(os.listdir(model_dir))
  assert {"config.gin", "operative_config.gin", "architecture.json",
          "checkpoints", "images"} <= files
  events = [f for f in files if f.startswith("events.out.tfevents")]
  assert len(events) == 1
  tags = {value.tag for event in tf.compat.v1.train.summary_iterator(
      os.path.join(model_dir, events[0])) for value in event.summary.value}
  assert {"loss/d", "loss/eg", "loss_terms/d_encoder_score_xz",
          "scores/generator_pairs/score_x", "learning_rate/encoder",
          "images_per_second", "samples", "reconstructions",
          "encoder_filters", "operative_config",
          "eval/linear_probe_avepool_top1", "eval/knn5_top1"} <= tags
  images = set(os.listdir(os.path.join(model_dir, "images")))
  assert {"samples_00000002.png", "reconstructions_00000002.png",
          "encoder_filters_00000002.png"} <= images
  operative = open(os.path.join(model_dir, "operative_config.gin")).read()
  assert "trainer.d_steps = 1" in operative
  # Standing statistics ran on the EMA copies before they were used.
  model = restore.restore_inference_model(model_dir)
  bn = [l for l in model.generator._flatten_layers()  # pylint: disable=protected-access
        if hasattr(l, "standing_count")]
  assert bn and all(float(l.standing_count) > 0 for l in bn)


def test_restored_standing_statistics_come_from_large_batches(
    smoke_run_dir, monkeypatch):
  """The EMA copies' statistics: 10 standing passes over batches of
  STANDING_BATCH_SIZE by default (smaller batches leave the statistics
  depending on the batch size), or what the caller asks for."""
  sizes = []
  distributed_dataset = restore.data.distributed_dataset

  def recorded(strategy, batch_size, **kwargs):
    sizes.append(batch_size)
    return distributed_dataset(strategy, batch_size, **kwargs)

  monkeypatch.setattr(restore.data, "distributed_dataset", recorded)
  for kwargs, size, count in (({}, restore.STANDING_BATCH_SIZE, 10),
                              ({"standing_stats_batches": 3,
                                "batch_size": 8}, 8, 3)):
    model = restore.restore_inference_model(smoke_run_dir, **kwargs)
    assert sizes.pop() == size
    for network in (model.generator, model.encoder):
      counts = {float(l.standing_count) for l in network._flatten_layers()  # pylint: disable=protected-access
                if hasattr(l, "standing_count")}
      assert counts == {count}, (network.name, counts)


@pytest.mark.parametrize("name, value", [("standing_stats_batches", 0),
                                         ("batch_size", 2.5),
                                         ("batch_size", True)])
def test_bad_standing_batches_are_a_clear_error(smoke_run_dir, name, value):
  with pytest.raises(ValueError, match=f"{name} must be a positive integer; "
                     f"got {value!r}"):
    restore.restore_inference_model(smoke_run_dir, **{name: value})


def test_linear_learning_rate_decay_follows_the_global_step():
  bindings = ["trainer.d_steps = 1", "trainer.gradient_diagnostics = False",
              "trainer.learning_rate = 1e-3",
              "trainer.d_learning_rate = 4e-3",
              "trainer.encoder_lr_multiplier = 10.0",
              "trainer.learning_rate_decay = 'linear'",
              "trainer.decay_start_step = 2", "trainer.decay_end_step = 6"]
  trainer = _trainer(tf.distribute.get_strategy(), bindings=bindings)
  factors = [float(trainer.learning_rate_factor(s)) for s in range(9)]
  np.testing.assert_allclose(
      factors, [1, 1, 1, 0.75, 0.5, 0.25, 0, 0, 0], atol=1e-7)
  dataset = tf.distribute.get_strategy().distribute_datasets_from_function(
      lambda ctx: training_worker.synthetic_dataset(8, ctx))
  iterator = iter(dataset)
  expected = {"generator": 1e-3, "discriminator": 4e-3, "encoder": 1e-2}
  # The optimisers read the rate of the step the trainer is at: factor(4)
  # after 4 steps, factor(7) = 0 after 3 more.
  for steps, factor in ((4, 0.5), (1, 0.25)):
    trainer.train_loop(iterator, tf.constant(steps))
    rates = trainer.current_learning_rates()
    assert rates.keys() == expected.keys()
    for role, rate in expected.items():
      np.testing.assert_allclose(rates[role], rate * factor, rtol=1e-6,
                                 err_msg=role)
  trainable = {f"{role}/{v.path}"
               for role in ("generator", "encoder", "discriminator")
               for v in trainer.model.networks()[role].trainable_variables}

  def moved_by_one_step():
    before = _weights(trainer)
    trainer.train_loop(iterator, tf.constant(1))
    after = _weights(trainer)
    assert trainable <= before.keys()
    return [k for k in trainable if not np.array_equal(before[k], after[k])]

  # The step that starts at 5 uses factor(5) = 0.25: each network moves;
  # the step that starts at 6 uses factor(6) = 0: nothing moves.
  assert trainer.step() == 5
  moved = moved_by_one_step()
  assert {k.split("/")[0] for k in moved} == {
      "generator", "encoder", "discriminator"}, moved[:3]
  assert trainer.step() == 6
  moved = moved_by_one_step()
  assert not moved, moved[:3]


@pytest.mark.parametrize("bindings, match", [
    (["trainer.learning_rate_decay = 'cosine'"],
     "learning_rate_decay must be one of .*'constant', 'linear'.*'cosine'"),
    (["trainer.learning_rate_decay = 'linear'",
      "trainer.decay_start_step = 600", "trainer.decay_end_step = 600"],
     "decay_start_step=600, decay_end_step=600"),
])
def test_bad_learning_rate_decay_is_a_clear_error(bindings, match):
  with pytest.raises(ValueError, match=match):
    _trainer(tf.distribute.get_strategy(), bindings=bindings)


@pytest.mark.slow
def test_resumed_run_uses_the_configured_rates(tmp_path, data_dir,
                                              eager_functions):
  """A resumed run takes its rates from the config (here changed between
  the runs), not from the checkpoint it restores."""
  del eager_functions
  model_dir = str(tmp_path / "run")
  training_worker.train(model_dir, data_dir, 1, "trainer.learning_rate = 1e-3",
                        "trainer.d_learning_rate = 1e-3")
  training_worker.train(model_dir, data_dir, 2, "trainer.learning_rate = 2e-4",
                        "trainer.d_learning_rate = 3e-4")
  path, values = _checkpoint_values(model_dir)
  assert path.endswith("ckpt-2")
  # The checkpoint holds the rates last used: the second run's config.
  rates = {name: float(value) for name, value in values.items()
           if "learning_rate" in name}
  assert len(rates) == 3, sorted(values)[:20]
  for name, rate in rates.items():
    expected = 3e-4 if "discriminator" in name else 2e-4
    np.testing.assert_allclose(rate, expected, rtol=1e-6, err_msg=name)
  logged = {}
  for name in os.listdir(model_dir):
    if name.startswith("events.out.tfevents"):
      for event in tf.compat.v1.train.summary_iterator(
          os.path.join(model_dir, name)):
        for value in event.summary.value:
          if value.tag.startswith("learning_rate/"):
            logged[(event.step, value.tag)] = float(
                tf.make_ndarray(value.tensor))
  assert logged[(1, "learning_rate/generator")] == pytest.approx(1e-3)
  assert logged[(2, "learning_rate/generator")] == pytest.approx(2e-4)
  assert logged[(2, "learning_rate/encoder")] == pytest.approx(2e-4)
  assert logged[(2, "learning_rate/discriminator")] == pytest.approx(3e-4)


def test_ema_copies_follow_the_weights_by_the_configured_decay():
  """EMA = decay * old + (1 - decay) * live after an update; before
  ema_start_step the copies equal the live weights."""
  trainer = _trainer(tf.distribute.get_strategy(), bindings=[
      "trainer.ema_decay = 0.75", "trainer.ema_start_step = 5"])
  rng = np.random.default_rng(0)
  for role in ("generator", "encoder"):  # Live weights move away from EMA.
    for v in trainer.model.networks()[role].trainable_variables:
      v.assign(v.numpy() + rng.normal(size=v.shape).astype(np.float32))
  before = {role: [v.numpy().copy() for v in copy.trainable_variables]
            for role, copy in trainer.ema.items()}
  trainer.global_step.assign(5)  # At ema_start_step: the decay applies.
  trainer._update_ema()  # pylint: disable=protected-access
  for role, copy in trainer.ema.items():
    live = trainer.model.networks()[role].trainable_variables
    for old, dst, src in zip(before[role], copy.trainable_variables,
                             live):
      np.testing.assert_allclose(dst.numpy(),
                                 0.75 * old + 0.25 * src.numpy(),
                                 rtol=1e-5, atol=1e-6, err_msg=dst.path)
      assert not np.allclose(dst.numpy(), old), dst.path
  trainer.global_step.assign(4)  # Before it: the copies track exactly.
  trainer._update_ema()  # pylint: disable=protected-access
  for role, copy in trainer.ema.items():
    for dst, src in zip(copy.trainable_variables,
                        trainer.model.networks()[role].trainable_variables):
      np.testing.assert_array_equal(dst.numpy(), src.numpy())


def test_adam_betas_reach_every_optimiser():
  trainer = _trainer(tf.distribute.get_strategy(), bindings=[
      "trainer.beta1 = 0.25", "trainer.beta2 = 0.875"])
  assert set(trainer.optimizers) == {"generator", "encoder", "discriminator"}
  for role, optimizer in trainer.optimizers.items():
    assert float(optimizer.beta_1) == 0.25, role
    assert float(optimizer.beta_2) == 0.875, role


def test_one_outer_step_makes_d_steps_discriminator_updates():
  """trainer.d_steps = 3: one outer step of train_loop updates D three
  times, E and G once each."""
  strategy = tf.distribute.get_strategy()
  trainer = _trainer(strategy, bindings=["trainer.d_steps = 3"])
  assert trainer.d_steps == 3
  iterator = iter(strategy.distribute_datasets_from_function(
      lambda ctx: training_worker.synthetic_dataset(8, ctx)))
  before = {role: int(optimizer.iterations)
            for role, optimizer in trainer.optimizers.items()}
  assert before == {"generator": 0, "encoder": 0, "discriminator": 0}
  trainer.train_loop(iterator, tf.constant(1))
  after = {role: int(optimizer.iterations)
           for role, optimizer in trainer.optimizers.items()}
  assert after == {"generator": 1, "encoder": 1, "discriminator": 3}
  assert trainer.step() == 1


@pytest.mark.parametrize("in_function", [False, True])
def test_fused_adam_matches_keras_adam(in_function):
  """Same updates and state as keras.optimizers.Adam, eagerly and traced."""
  rng = np.random.default_rng(0)
  initial = [rng.normal(size=(3, 4)).astype(np.float32),
             rng.normal(size=(5,)).astype(np.float32)]
  grads = [[rng.normal(size=w.shape).astype(np.float32) for w in initial]
           for _ in range(4)]
  results = []
  for optimizer_class in (keras.optimizers.Adam, training.FusedAdam):
    weights = [keras.Variable(w) for w in initial]
    optimizer = optimizer_class(1e-2, beta_1=0.5, beta_2=0.9)
    optimizer.build(weights)
    apply = lambda g: optimizer.apply_gradients(zip(g, weights))
    if in_function:
      apply = tf.function(apply)
    for step_grads in grads:
      apply([tf.constant(g) for g in step_grads])
    results.append([v.numpy() for v in weights + optimizer.variables])
  keras_state, fused_state = results
  assert len(keras_state) == len(fused_state) > len(initial)
  for expected, got in zip(keras_state, fused_state):
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  # Four steps moved the weights.
  assert not np.allclose(fused_state[0], initial[0], atol=1e-3)


def test_latent_seeds_differ_for_every_step_and_substep():
  """With many D steps, (step, substep) pairs must not share latents."""
  trainer = _trainer(tf.distribute.get_strategy(), bindings=[
      "trainer.d_steps = 20"])
  seen = {}
  for step in range(3):
    for substep in range(trainer.d_steps + 1):
      z, _ = trainer.strategy.run(
          trainer._latents,  # pylint: disable=protected-access
          args=(tf.constant(step, tf.int64), substep))
      key = z.numpy().tobytes()
      assert key not in seen, ((step, substep), seen.get(key))
      seen[key] = (step, substep)


def test_train_loop_returns_the_mean_of_its_steps(eager_functions):
  """A loop of 2 steps reports each metric's mean over those 2 steps."""
  del eager_functions
  bindings = ["trainer.d_steps = 1"]
  stepwise = _trainer(tf.distribute.get_strategy(), bindings=bindings)
  looped = _trainer(tf.distribute.get_strategy(), bindings=bindings)
  for role, net in stepwise.model.networks().items():
    for dst, src in zip(looped.model.networks()[role].weights,
                        net.weights):
      dst.assign(src)
  data = iter(training_worker.synthetic_dataset(8))
  first = stepwise.train_loop(data, tf.constant(1))
  second = stepwise.train_loop(data, tf.constant(1))
  mean = looped.train_loop(iter(training_worker.synthetic_dataset(8)),
                           tf.constant(2))
  for key in ("loss/d", "loss/eg", "loss_terms/d_encoder_score_x"):
    expected = (float(first[key]) + float(second[key])) / 2
    assert float(mean[key]) == pytest.approx(expected, rel=1e-4), key
  # Not the last step's value (the two steps' losses differ).
  assert float(first["loss/eg"]) != pytest.approx(float(second["loss/eg"]),
                                                  rel=1e-3)


@pytest.mark.slow
def test_train_restores_the_callers_precision_policy(tmp_path, data_dir,
                                                    eager_functions):
  del eager_functions
  import keras  # pylint: disable=g-import-not-at-top
  assert keras.mixed_precision.global_policy().name == "float32"
  seen = []
  original = training.Trainer.__init__

  def recording_init(self, *args, **kwargs):
    seen.append(keras.mixed_precision.global_policy().name)
    original(self, *args, **kwargs)
    seen.append((self.model.generator.compute_dtype,
                 self.model.generator.trainable_variables[0].dtype))

  training.Trainer.__init__ = recording_init
  try:
    # A non-finite loss would raise NonFiniteLossError: the bfloat16 step
    # is finite.
    training_worker.train(str(tmp_path / "bf16"), data_dir, 1,
                          "train.mixed_precision = True")
  finally:
    training.Trainer.__init__ = original
  # In effect while training (bfloat16 compute, float32 weights) ...
  assert seen == ["mixed_bfloat16", ("bfloat16", tf.float32)]
  assert keras.mixed_precision.global_policy().name == "float32"  # ... only.


def test_uint8_images_are_sent_as_uint8_and_scaled_in_the_step():
  """A pipeline with image_dtype="uint8" hands the replicas uint8 batches;
  the step scales them on the replica: the same metrics and weights as the
  step given the scaled float images."""
  strategy = conftest.two_replica_strategy()
  rng = np.random.default_rng(3)
  pixels = rng.integers(0, 256, size=(8, 32, 32, 3)).astype(np.uint8)
  results = []
  for images in (pixels, pixels.astype(np.float32) / 127.5 - 1.0):
    tf.keras.utils.set_random_seed(2)
    trainer = _trainer(strategy, 8, ["trainer.d_steps = 1",
                                     "trainer.gradient_diagnostics = False"])
    dataset = strategy.distribute_datasets_from_function(
        lambda ctx, images=images: tf.data.Dataset.from_tensor_slices(
            {"image": images}).shard(ctx.num_input_pipelines,
                                     ctx.input_pipeline_id).batch(
                                         ctx.get_per_replica_batch_size(8)
                                     ).repeat())
    specs = dataset.element_spec["image"]._component_specs  # pylint: disable=protected-access
    assert [spec.dtype for spec in specs] == [images.dtype] * 2
    metrics = trainer.train_loop(iter(dataset), tf.constant(1))
    results.append(({k: float(v) for k, v in metrics.items()},
                    _weights(trainer)))
  (uint8_metrics, uint8_weights), (float_metrics, float_weights) = results
  assert uint8_metrics == pytest.approx(float_metrics, rel=1e-5, abs=1e-6)
  for name, value in float_weights.items():
    np.testing.assert_allclose(uint8_weights[name], value, rtol=1e-5,
                               atol=1e-6, err_msg=name)


@pytest.mark.parametrize("source, pipelines", [("separate", 2),
                                               ("training", 1)])
def test_standing_statistics_input(tmp_path, data_dir, monkeypatch, source,
                                   pipelines):
  """"training" takes the standing statistics' batches from the training
  input: one pipeline instead of two."""
  made = []
  distributed_dataset = training.data.distributed_dataset

  def counted(*args, **kwargs):
    made.append(kwargs.get("seed"))
    return distributed_dataset(*args, **kwargs)

  monkeypatch.setattr(training.data, "distributed_dataset", counted)
  config.parse([SMOKE_GIN], [
      "make_dataset.name = 'mnist5k'", f"make_dataset.data_dir = '{data_dir}'",
      "train.train_steps = 1", "train.batch_size = 4",
      "train.image_every = 1", "trainer.d_steps = 1",
      "trainer.gradient_diagnostics = False",
      f"train.standing_statistics_input = '{source}'"])
  training.train(str(tmp_path / "run"))
  assert len(made) == pipelines, made
  assert (tmp_path / "run" / "images" / "samples_00000001.png").exists()


def test_unknown_standing_statistics_input_is_a_clear_error(tmp_path):
  config.parse([SMOKE_GIN], ["train.standing_statistics_input = 'other'"])
  with pytest.raises(ValueError, match="expected one of separate, training"):
    training.train(str(tmp_path / "run"))
