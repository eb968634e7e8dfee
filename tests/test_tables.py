"""The gin files that reproduce the paper's Tables 1-3 (gin/table1..3).

Each row file is checked twice:

* `test_row_at_full_size`: the file is parsed and G, E and D are built at
  full (paper) size from its bindings; their parameter counts are printed
  (`pytest -s`). A summary of the row -- architecture read from the built
  networks; optimisation, data, run length and evaluation read from gin --
  must equal the summary `ROWS` specifies: its parent's plus the changes the
  row is about. So every row checks its own property (encoder type, depth
  and width, latent mode and prior, unary switches, resolutions, lr
  multiplier, steps, ...) and that it changes nothing else. BigBiGAN's own
  checks (z widths, resolutions, prior vs latent mode) run on the parts.
* `test_row_trains_one_step`: the same file plus bindings that shrink the
  networks and the batch but keep what the row is about
  (`_shrinking_bindings`) trains one step (`Trainer.train_loop`) on
  mnist5k through the row's own augmentation.

Cost (the file must stay around 3 minutes on 2 shared cores):
* Full size: the constructors' orthogonal initialisation and forward pass
  are replaced by zero kernels and a shape-only conv2d
  (`_shape_only_builds`; shapes and counts unchanged), and each distinct
  network is built once for all the rows that bind it (only its counts and
  architecture facts are kept).
* One step: each distinct reduced network is likewise built once and
  shared by the rows that bind it (each row still gets its own Trainer,
  optimisers, EMA copies and data pipeline); one D step per E+G step (the
  rows' d_steps is checked at full size); and the step runs eagerly
  (`tf.config.run_functions_eagerly`): tracing it costs 15-25 s per row
  here, eager execution 1-2 s. Graph-mode and XLA tracing of the same step
  code are covered by tests/test_training.py and tests/test_networks.py.
"""

import dataclasses
import gc
import pathlib
import re
import time
import types
from typing import Any, Optional

import gin
import numpy as np
import pytest
import tensorflow as tf

import conftest  # pylint: disable=g-bad-import-order
from bigbigan_tf import config
from bigbigan_tf import data
from bigbigan_tf import model as model_lib
from bigbigan_tf import networks
from bigbigan_tf import training
from bigbigan_tf.networks import revnet as revnet_lib

ROOT = pathlib.Path(__file__).resolve().parent.parent
TABLE_DIRS = ("table1", "table2", "table3")

# The Table 1 base (docs/design.md sections 1-5), the root every row derives
# from.
BASE = {
    "g_resolution": 128, "g_ch": 96, "z_dim": 120, "g_chunks": 6,
    "g_embedding_dim": 128, "g_attention": (64,),
    "e_architecture": "resnet_v2", "e_depth": 50, "e_width": 1,
    "e_resolution": 128, "e_latent_mode": "stochastic", "e_units": 16,
    "e_reversible_units": 0, "e_reversible_backprop": False,
    "e_feature_width": 2048, "e_mlp_width": 4096,
    "prior": "normal",
    "d_resolution": 128, "d_ch": 96, "d_scores": ("x", "z", "xz"),
    "d_attention": (64,), "d_mlp_width": 2048,
    "learning_rate": 5e-5, "d_learning_rate": 2e-4,
    "encoder_lr_multiplier": 1.0, "d_steps": 2, "beta1": 0.0,
    "beta2": 0.999, "ema_decay": 0.9999,
    "train_steps": 500_000, "batch_size": 2048,
    "dataset_split": "train[10000:]", "checkpoint_input_pipeline": False,
    "dataset": "imagenet2012", "augmentation": "resnet",
    "eval_dataset": "imagenet2012", "eval_train_split": "train[10000:]",
    "eval_test_split": "train[:10000]", "probe_learning_rate": 0.01,
    "probe_ema_decay": 0.9999,
}

_NO_ENCODER = {k: None for k in BASE if k.startswith("e_")}
# StandardGAN: no E, and D is F with s_x only (no H, no J).
_STANDARD_GAN = {**_NO_ENCODER, "d_scores": ("x",), "d_mlp_width": None}
_HIGH_RES_E = {"e_resolution": 256}
_REVNET = {"e_architecture": "revnet", "e_reversible_units": 16}
_FINAL = {"encoder_lr_multiplier": 10.0, "train_steps": 1_000_000,
          "dataset_split": "train", "eval_train_split": "train",
          "eval_test_split": "validation"}
_TABLE3 = {"augmentation": "table3", "dataset_split": "train",
           "eval_train_split": "train", "eval_test_split": "validation"}

# row -> (parent row or None for the base, what the row changes).
ROWS = {
    "table1/base": (None, {}),
    "table1/deterministic_e": ("table1/base",
                               {"e_latent_mode": "deterministic"}),
    "table1/uniform_pz": ("table1/base", {"e_latent_mode": "uniform",
                                          "prior": "uniform"}),
    "table1/x_unary_only": ("table1/base", {"d_scores": ("x", "xz")}),
    "table1/z_unary_only": ("table1/base", {"d_scores": ("z", "xz")}),
    "table1/no_unaries": ("table1/base", {"d_scores": ("xz",)}),
    "table1/small_g_32": ("table1/base", {"g_ch": 32}),
    "table1/small_g_64": ("table1/base", {"g_ch": 64}),
    "table1/standard_gan": ("table1/base", _STANDARD_GAN),
    "table1/high_res_e_256_g64": ("table1/base", {
        **_HIGH_RES_E, "g_resolution": 64, "d_resolution": 64,
        "g_chunks": 5, "g_attention": (32,), "d_attention": (32,)}),
    "table1/high_res_e_256_g128": ("table1/base", _HIGH_RES_E),
    "table1/high_res_e_256_g256": ("table1/base", {
        **_HIGH_RES_E, "g_resolution": 256, "d_resolution": 256,
        "z_dim": 140, "g_chunks": 7}),
    "table1/resnet101": ("table1/base", {"e_depth": 101, "e_units": 33}),
    "table1/resnet_x2": ("table1/base", {"e_width": 2,
                                         "e_feature_width": 4096}),
    "table1/revnet": ("table1/base", _REVNET),
    "table1/revnet_x2": ("table1/revnet", {"e_width": 2,
                                           "e_feature_width": 4096}),
    "table1/revnet_x4": ("table1/revnet", {"e_width": 4,
                                           "e_feature_width": 8192}),
    "table1/resnet_elr10": ("table1/base", {"encoder_lr_multiplier": 10.0}),
    "table1/revnet_x4_elr10": ("table1/revnet_x4",
                               {"encoder_lr_multiplier": 10.0}),
    "table2/resnet50": ("table1/high_res_e_256_g128", _FINAL),
    "table2/revnet50x4": ("table2/resnet50", {**_REVNET, "e_width": 4,
                                              "e_feature_width": 8192}),
    "table3/bigbigan_single_label": ("table1/base", _TABLE3),
    "table3/biggan_single_label": ("table3/bigbigan_single_label",
                                   _STANDARD_GAN),
    "table3/high_res_e_single_label_500k": ("table3/bigbigan_single_label",
                                            _HIGH_RES_E),
    "table3/high_res_e_single_label_1m": (
        "table3/high_res_e_single_label_500k", {"train_steps": 1_000_000}),
}
# Files that are not experiments but are included by some (tested through
# them, and for their header).
FRAGMENTS = ("table2/linear_eval",)

# What each header must quote as the paper's figures (docs/paper_tables.md,
# docs/design.md section 6); every other row must say they are not recorded.
NO_FIGURES = "Paper's figures: not recorded here"
FIGURES = {
    "table2/resnet50": ("55.4 / 77.4", "56.6 / 78.6"),
    "table2/revnet50x4": ("60.8 / 81.4", "61.3 / 81.9"),
    "table2/linear_eval": ("55.4 / 77.4", "56.6 / 78.6", "60.8 / 81.4",
                           "61.3 / 81.9"),
    "table3/biggan_single_label": ("IS 20.4 / FID 25.3 (unverified",),
    "table3/high_res_e_single_label_500k": ("FID 22.3",),
    "table3/high_res_e_single_label_1m": ("FID 20.3",),
}

# Paper-size counts documented in docs/paper_tables.md.
G128_PARAMS = 70_306_116
E_RESNET50_PARAMS = 91_641_648
D128_PARAMS = 160_375_076
# E RevNet-50 x4: 85,765,632 in the backbone (the paper's 86M) + the head.
E_REVNET50X4_PARAMS = 204_238_576


def expected_summary(row: str) -> dict:
  parent, changes = ROWS[row]
  base = BASE if parent is None else expected_summary(parent)
  unknown = set(changes) - set(BASE)
  assert not unknown, f"{row}: unknown summary keys {unknown}"
  return {**base, **changes}


def _gin_file(row: str) -> str:
  return f"gin/{row}.gin"


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
  """gin resolves the files' `include 'gin/...'` from the repository root."""
  monkeypatch.chdir(ROOT)


# -- files and headers ---------------------------------------------------------


def test_every_table_file_is_a_tested_row_or_fragment():
  on_disk = {f"{path.parent.name}/{path.stem}"
             for table in TABLE_DIRS for path in (ROOT / "gin" / table).glob("*")}
  assert on_disk == set(ROWS) | set(FRAGMENTS)


@pytest.mark.parametrize("row", sorted(set(ROWS) | set(FRAGMENTS)))
def test_header_states_row_changes_figures_tpu_and_command(row):
  """Line 1 names the paper's row; then the changes, the command, the
  paper's figures and the TPU cost (slice and time estimate)."""
  text = (ROOT / _gin_file(row)).read_text()
  header = "\n".join(re.match(r"(#[^\n]*\n)+", text).group(0).splitlines())
  table = row.split("/")[0]
  assert header.startswith(f"# Table {table[-1]} (Donahue & Simonyan 2019")
  assert "Changes" in header
  flat = " ".join(line.lstrip("# ").strip() for line in header.splitlines())
  for figure in FIGURES.get(row, (NO_FIGURES,)):
    assert figure in flat, (row, figure)
  assert re.search(r"TPU: .*v3-\d+ recommended", flat) or row in FRAGMENTS
  if row in ROWS:
    assert re.search(r"estimate about [\d,]+ h on v3-\d+", flat, re.I), row
  # The command trains this very file, named as gin resolves it from any
  # directory (a fragment: the config including it).
  command = header[header.index("bigbigan-train "):]
  gin_file = re.search(r"--gin_file=(\S+)", command).group(1)
  model_dir = re.search(r"--model_dir=(\S+)", command).group(1)
  if row in ROWS:
    assert gin_file == f"{row}.gin"
    assert model_dir == f"gs://BUCKET/bigbigan/{row}"
    # Tables 1-2 evaluate after training (streamed); Table 3's FID/IS needs
    # an Inception binding, so those commands skip the evaluation.
    assert ("--noevaluate" in command) == row.startswith("table3/")
  else:
    including = (ROOT / "gin" / gin_file).read_text()
    assert re.search(rf"^include '(gin/)?{re.escape(row)}\.gin'$", including,
                     flags=re.M), (gin_file, row)
  assert "--tpu=TPU_NAME" in command and "DATA_DIR=" in command


@pytest.mark.parametrize("row", sorted(ROWS))
def test_row_includes_its_parent(row):
  parent, _ = ROWS[row]
  text = (ROOT / _gin_file(row)).read_text()
  includes = re.findall(r"^include '([^']+)'", text, flags=re.M)
  if parent is None:
    assert not includes
  else:
    # Included by shipped name, so it resolves from any directory.
    assert includes[0] == f"{parent}.gin"


# -- full size -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class NetworkFacts:
  """What the tests keep of a built network (the weights are dropped)."""
  params: int
  arguments: dict
  attributes: dict  # Read by BigBiGAN's compatibility checks.
  facts: dict


def _params(network) -> int:
  return sum(int(np.prod(v.shape)) for v in network.trainable_weights)


def _attention_sizes(network) -> tuple:
  return tuple(sorted(int(layer.name.removeprefix("attention"))
                      for layer in network.attention.values()))


def _generator_facts(generator) -> NetworkFacts:
  return NetworkFacts(
      _params(generator), dict(generator.constructor_arguments),
      {"z_dim": generator.z_dim, "resolution": generator.resolution},
      {"chunks": generator.num_blocks + 1,
       "embedding_dim": int(generator.embedding.kernel.shape[-1]),
       "attention": _attention_sizes(generator)})


def _encoder_facts(encoder) -> NetworkFacts:
  reversible = sum(isinstance(u, revnet_lib.ReversibleUnit)
                   for u in encoder.units)
  return NetworkFacts(
      _params(encoder), dict(encoder.constructor_arguments),
      {"z_dim": encoder.z_dim, "resolution": encoder.resolution,
       "latent_mode": encoder.latent_mode},
      {"units": len(encoder.units), "reversible_units": reversible,
       "feature_width": int(encoder.final_bn.gamma.shape[0]),
       "mlp_width": encoder.head.width,
       "has_sigma_head": encoder.sigma_hat is not None})


def _discriminator_facts(discriminator) -> NetworkFacts:
  scores = tuple(name for name, on in (
      ("x", discriminator.use_score_x), ("z", discriminator.use_score_z),
      ("xz", discriminator.use_score_xz)) if on)
  return NetworkFacts(
      _params(discriminator), dict(discriminator.constructor_arguments),
      {"z_dim": discriminator.z_dim, "resolution": discriminator.resolution,
       "needs_z": discriminator.needs_z},
      {"scores": scores, "attention": _attention_sizes(discriminator),
       "has_h": discriminator.h_net is not None,
       "has_j": discriminator.j_net is not None,
       "mlp_width": (discriminator.h_net or discriminator.j_net).width
                    if discriminator.needs_z else None})


_BUILDERS = {
    "generator": (networks.Generator, _generator_facts),
    "encoder": (networks.Encoder, _encoder_facts),
    "discriminator": (networks.Discriminator, _discriminator_facts),
}
# (role, bindings) -> NetworkFacts, shared by every row with those bindings.
_FULL_SIZE_CACHE: dict = {}


def _bindings_key(role: str) -> tuple:
  """Identifies the network gin binds for `role` (macros resolved)."""
  bindings = gin.get_bindings(role)
  return (role, tuple(sorted((k, repr(v)) for k, v in bindings.items())))


def _full_size_facts(role: str) -> tuple[NetworkFacts, float]:
  """Builds the gin-bound network `role` at full size, once per bindings."""
  key = _bindings_key(role)
  if key in _FULL_SIZE_CACHE:
    return _FULL_SIZE_CACHE[key], 0.0
  network_class, describe = _BUILDERS[role]
  start = time.time()
  with conftest.shape_only_builds():
    network = network_class()  # Arguments from the gin bindings.
  facts = describe(network)
  del network
  gc.collect()
  _FULL_SIZE_CACHE[key] = facts
  return facts, time.time() - start


def _query(parameter: str, default: Any = None) -> Any:
  try:
    return gin.query_parameter(parameter)
  except ValueError:
    return default


def _training_summary() -> dict:
  """The optimisation, run and data facts of the parsed config."""
  return {
      "learning_rate": _query("trainer.learning_rate"),
      "d_learning_rate": _query("trainer.d_learning_rate"),
      "encoder_lr_multiplier": _query("trainer.encoder_lr_multiplier"),
      "d_steps": _query("trainer.d_steps"),
      "beta1": _query("trainer.beta1"),
      "beta2": _query("trainer.beta2"),
      "ema_decay": _query("trainer.ema_decay"),
      "train_steps": _query("train.train_steps"),
      "batch_size": _query("train.batch_size"),
      "dataset_split": _query("train.dataset_split"),
      "checkpoint_input_pipeline": _query("train.checkpoint_input_pipeline"),
      "dataset": _query("make_dataset.name"),
      "augmentation": _query("make_dataset.augmentation"),
      "eval_dataset": _query("evaluation.dataset"),
      "eval_train_split": _query("evaluation.train_split"),
      "eval_test_split": _query("evaluation.test_split"),
      "probe_learning_rate": _query("linear_probe.learning_rate"),
      "probe_ema_decay": _query("linear_probe.ema_decay"),
  }


def _summary(generator: NetworkFacts, encoder: Optional[NetworkFacts],
             discriminator: NetworkFacts, prior) -> dict:
  summary = {
      "g_resolution": generator.attributes["resolution"],
      "g_ch": generator.arguments["ch"],
      "z_dim": generator.attributes["z_dim"],
      "g_chunks": generator.facts["chunks"],
      "g_embedding_dim": generator.facts["embedding_dim"],
      "g_attention": generator.facts["attention"],
      "prior": prior.distribution,
      "d_resolution": discriminator.attributes["resolution"],
      "d_ch": discriminator.arguments["ch"],
      "d_scores": discriminator.facts["scores"],
      "d_attention": discriminator.facts["attention"],
      "d_mlp_width": discriminator.facts["mlp_width"],
  }
  summary.update(_NO_ENCODER)
  if encoder is not None:
    summary.update({
        "e_architecture": encoder.arguments["architecture"],
        "e_depth": encoder.arguments["depth"],
        "e_width": encoder.arguments["width"],
        "e_resolution": encoder.attributes["resolution"],
        "e_latent_mode": encoder.attributes["latent_mode"],
        "e_units": encoder.facts["units"],
        "e_reversible_units": encoder.facts["reversible_units"],
        "e_reversible_backprop": encoder.arguments["reversible_backprop"],
        "e_feature_width": encoder.facts["feature_width"],
        "e_mlp_width": encoder.facts["mlp_width"],
    })
  summary.update(_training_summary())
  return summary


def _assemble(parts: dict, prior) -> model_lib.BigBiGAN:
  """BigBiGAN(parts), with the gin config cleared for the call.

  gin evaluates the `bigbigan.generator = @generator()` (etc.) bindings
  even for arguments passed explicitly, i.e. it would build the networks
  again. The caller parses its config again if it still needs it.
  """
  gin.clear_config()
  return model_lib.BigBiGAN(
      generator=parts["generator"], discriminator=parts["discriminator"],
      prior=prior, encoder=parts.get("encoder"))


def _encoder_is_bound() -> bool:
  # Not gin.query_parameter: it deep-copies the binding, and deep-copying
  # `@encoder()` calls it (builds the encoder).
  bindings = gin.get_bindings("bigbigan", resolve_references=False)
  return bindings.get("encoder") is not None


@pytest.mark.parametrize("row", sorted(ROWS))
def test_row_at_full_size(row):
  config.parse([_gin_file(row)])
  built = {}
  seconds = 0.0
  for role in ("generator", "encoder", "discriminator"):
    if role == "encoder" and not _encoder_is_bound():
      continue
    built[role], cost = _full_size_facts(role)
    seconds += cost
  prior = networks.Prior()
  summary = _summary(built["generator"], built.get("encoder"),
                     built["discriminator"], prior)
  # The parts must fit together (z widths, resolutions, prior vs latent
  # mode, an encoder for a D that scores z): BigBiGAN's own checks, on the
  # facts of the built networks.
  _assemble({role: types.SimpleNamespace(**facts.attributes)
             for role, facts in built.items()}, prior)

  counts = {role: facts.params for role, facts in built.items()}
  print(f"\n{row}: " + ", ".join(f"{role} {n:,}" for role, n in counts.items())
        + f", total {sum(counts.values()):,} parameters "
        f"(built in {seconds:.1f} s)")
  expected = expected_summary(row)
  differences = {k: (summary[k], expected[k]) for k in expected
                 if summary[k] != expected[k]}
  assert not differences, f"{row}: (config, expected): {differences}"
  assert set(summary) == set(expected)

  if "encoder" in built:
    # The stochastic mode alone has a sigma head.
    assert built["encoder"].facts["has_sigma_head"] == (
        summary["e_latent_mode"] == "stochastic")
    assert built["discriminator"].facts["has_h"]
  else:
    assert not built["discriminator"].facts["has_h"]
  assert built["discriminator"].facts["has_j"] == ("xz" in summary["d_scores"])
  if row == "table1/base":
    assert counts == {"generator": G128_PARAMS, "encoder": E_RESNET50_PARAMS,
                      "discriminator": D128_PARAMS}
  if summary["e_architecture"] == "revnet" and summary["e_width"] == 4:
    assert counts["encoder"] == E_REVNET50X4_PARAMS


# -- one training step at reduced width ------------------------------------------


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("tfds"))
  data.prepare_mnist5k(path)
  return path


# G and D at 32x32 for the one-step runs; E at the row's multiple of it.
_REDUCED_RESOLUTION = 32


def _shrinking_bindings(data_dir: str) -> list[str]:
  """Small networks and batch that keep what a row is about.

  Kept: E's architecture, width multiplier and latent mode, ResNet-101's
  depth, the ratio of E's resolution to G's, z_dim, P_z, D's scores and
  every optimisation hyperparameter but d_steps. Shrunk: channel widths
  divided by 8 (G stays narrower than D in the small-G rows, and every
  attention block keeps the 8 channels it needs), E at 4 base channels,
  64-unit MLPs with one block, one unit per E stage at depth 50 (every
  RevNet unit is reversible), G and D at 32x32 with attention at 16x16,
  batch 4, one D step, mnist5k.

  E's 4 base channels are a floor: on this CPU build (TF 2.21, oneDNN on)
  the filter gradient of a 1x1 stride-2 convolution with 8 or fewer input
  channels on a 64x64 or larger input crashes the process (e.g. input
  [4, 64, 64, 8], kernel [1, 1, 8, 16]); with 2 base channels E's stage-2
  projection is such a convolution when E sees 256x256 images.
  """
  g_ch = gin.query_parameter("generator.ch")
  d_ch = gin.query_parameter("discriminator.ch")
  ratio = (gin.query_parameter("%ENCODER_RESOLUTION")
           // gin.query_parameter("%RESOLUTION"))
  bindings = [
      f"RESOLUTION = {_REDUCED_RESOLUTION}",
      f"ENCODER_RESOLUTION = {_REDUCED_RESOLUTION * ratio}",
      f"generator.ch = {g_ch // 8}",
      "generator.embedding_dim = 8",
      "generator.attention_resolutions = (16,)",
      f"discriminator.ch = {d_ch // 8}",
      "discriminator.attention_resolutions = (16,)",
      "discriminator.mlp_width = 64",
      "discriminator.mlp_blocks = 1",
      "encoder.base_channels = 4",
      "encoder.mlp_width = 64",
      "encoder.mlp_blocks = 1",
      "trainer.d_steps = 1",
      "train.batch_size = 4",
      "train.dataset_split = 'train'",
      "make_dataset.name = 'mnist5k'",
      f"DATA_DIR = '{data_dir}'",
      "make_dataset.shuffle_buffer_size = 16",
  ]
  if gin.query_parameter("encoder.depth") == 50:
    bindings.append("encoder.units_per_stage = (1, 1, 1, 1)")
  return bindings


# What the shrinking bindings change in a row's summary.
_SHRUNK = ("g_resolution", "d_resolution", "e_resolution", "g_chunks",
           "g_attention", "d_attention", "g_ch", "g_embedding_dim", "d_ch",
           "d_mlp_width", "e_feature_width", "e_mlp_width", "e_units",
           "e_reversible_units", "d_steps", "batch_size", "dataset_split",
           "dataset")


# (role, bindings) -> network at reduced size, shared by the rows that bind
# the same one (their weights change with each row's step; irrelevant here).
_REDUCED_CACHE: dict = {}


def _reduced_model(row: str, bindings: list[str]) -> model_lib.BigBiGAN:
  """The row's reduced BigBiGAN, built from gin once per distinct network."""
  parts = {}
  for role in ("generator", "encoder", "discriminator"):
    if role == "encoder" and not _encoder_is_bound():
      continue
    key = _bindings_key(role)
    if key not in _REDUCED_CACHE:
      _REDUCED_CACHE[key] = _BUILDERS[role][0]()  # Arguments from gin.
    parts[role] = _REDUCED_CACHE[key]
  model = _assemble(parts, networks.Prior())
  config.parse([_gin_file(row)], bindings)  # For the trainer and the data.
  return model


@pytest.fixture
def eager_steps():
  """Runs the trainer's tf.functions eagerly (see the module docstring)."""
  previous = tf.config.functions_run_eagerly()
  tf.config.run_functions_eagerly(True)
  try:
    yield
  finally:
    tf.config.run_functions_eagerly(previous)


@pytest.mark.filterwarnings(
    "ignore:Even though the `tf.config.experimental_run_functions_eagerly`")
@pytest.mark.parametrize("row", sorted(ROWS))
def test_row_trains_one_step(row, mnist_dir, eager_steps):
  del eager_steps  # Used for its effect.
  start = time.time()
  config.parse([_gin_file(row)])
  bindings = _shrinking_bindings(mnist_dir)
  config.parse([_gin_file(row)], bindings)
  strategy = tf.distribute.get_strategy()
  batch_size = gin.query_parameter("train.batch_size")
  with strategy.scope():
    model = _reduced_model(row, bindings)
    trainer = training.Trainer(model, strategy, batch_size)

  # The reduced model is still the row's model, smaller.
  facts = {role: _BUILDERS[role][1](network)
           for role, network in model.networks().items()}
  summary = _summary(facts["generator"], facts.get("encoder"),
                     facts["discriminator"], model.prior)
  expected = expected_summary(row)
  assert {k: v for k, v in summary.items() if k not in _SHRUNK} == {
      k: v for k, v in expected.items() if k not in _SHRUNK}
  assert summary["g_resolution"] == summary["d_resolution"] == 32
  assert summary["g_ch"] * 8 == expected["g_ch"]
  assert summary["d_ch"] * 8 == expected["d_ch"]
  if model.encoder is not None:
    assert (summary["e_resolution"] * expected["g_resolution"]
            == 32 * expected["e_resolution"])
    assert summary["e_feature_width"] == 4 * 32 * expected["e_width"]
    assert (summary["e_reversible_units"] > 0) == (
        expected["e_reversible_units"] > 0)
    if expected["e_depth"] == 101:
      assert summary["e_units"] == expected["e_units"]

  dataset = data.distributed_dataset(
      strategy, batch_size, split=gin.query_parameter("train.dataset_split"),
      resolution=model.encoder_resolution, training=True, seed=0)
  metrics = trainer.train_loop(iter(dataset), tf.constant(1))
  assert trainer.step() == 1
  assert set(metrics) == set(trainer.metric_keys())
  bad = {k: float(v) for k, v in metrics.items()
         if not np.isfinite(float(v))}
  assert not bad, bad
  print(f"\n{row}: built and trained one step at reduced size in "
        f"{time.time() - start:.1f} s")


def test_table1_base_trainer_has_the_papers_adam_betas(mnist_dir):
  """Adam beta1 = 0 and beta2 = 0.999 reach G's, E's and D's optimisers of a
  Trainer built from table1/base.gin (at reduced width: the shrinking
  bindings keep every optimisation hyperparameter but d_steps)."""
  row = "table1/base"
  config.parse([_gin_file(row)])
  bindings = _shrinking_bindings(mnist_dir)
  config.parse([_gin_file(row)], bindings)
  strategy = tf.distribute.get_strategy()
  with strategy.scope():
    model = _reduced_model(row, bindings)
    trainer = training.Trainer(model, strategy,
                               gin.query_parameter("train.batch_size"))
  assert set(trainer.optimizers) == {"generator", "encoder", "discriminator"}
  for role, optimizer in trainer.optimizers.items():
    assert float(optimizer.beta_1) == 0.0, role
    assert float(optimizer.beta_2) == 0.999, role
