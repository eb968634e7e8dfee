"""Tests of G, E, D and P_z: shapes, modes, gin, parameter counts (XLA: the
  full training step, test_training.py)."""

import random

import gin
import numpy as np
import pytest
import tensorflow as tf

import conftest  # pylint: disable=g-bad-import-order
from bigbigan_tf import config
from bigbigan_tf import networks
from bigbigan_tf.networks import common

SMOKE_GIN = "gin/smoke.gin"
ENCODER_KEYS = {"z_mean", "z_stdev", "z_sample", "avepool_feat",
                "bn_crelu_feat"}


def count_params(*models) -> int:
  return sum(int(np.prod(v.shape)) for m in models
             for v in m.trainable_weights)


@pytest.fixture(autouse=True)
def no_bindings_left_behind():
  """Tests here build networks directly: none sees another test's gin
  bindings, whatever order (or test worker) they run in."""
  yield
  gin.clear_config()


@pytest.fixture(scope="module")
def smoke_model():
  config.parse([SMOKE_GIN])
  return config.build_model()


def test_smoke_gin_builds_every_part(smoke_model):
  assert set(smoke_model.networks()) == {"generator", "encoder",
                                         "discriminator"}
  assert smoke_model.z_dim == 16
  assert len(smoke_model.encoder.units) == 4
  assert smoke_model.discriminator.needs_z


def test_generator_outputs_images_in_range(smoke_model):
  z = smoke_model.prior.sample(4)
  images = smoke_model.generate(z, training=True)
  assert images.shape == (4, 32, 32, 3)
  assert float(tf.reduce_max(tf.abs(images))) <= 1.0
  # Different z chunks change the output (hierarchical z reaches the blocks).
  z2 = tf.concat([z[:, :4], z[:, 4:] + 1.0], axis=1)
  assert not np.allclose(smoke_model.generate(z2), smoke_model.generate(z))


@pytest.mark.parametrize("resolution,num_blocks", [(32, 3), (64, 4), (128, 5),
                                                   (256, 6)])
def test_generator_resolutions(resolution, num_blocks):
  z_dim = 20 * (num_blocks + 1)
  generator = networks.Generator(resolution=resolution, ch=4, z_dim=z_dim,
                                 embedding_dim=4)
  assert len(generator.blocks) == num_blocks
  assert generator(tf.zeros([1, z_dim])).shape == (1, resolution, resolution,
                                                   3)
  # Attention only where the map is 64x64.
  assert (len(generator.attention) == 1) == (resolution >= 64)


def test_generator_rejects_bad_config_and_z():
  with pytest.raises(ValueError, match="equal chunks"):
    networks.Generator(resolution=32, ch=2, z_dim=10)
  with pytest.raises(ValueError, match="one of"):
    networks.Generator(resolution=48, ch=2)
  generator = networks.Generator(resolution=32, ch=2, z_dim=8,
                                 embedding_dim=4)
  with pytest.raises(ValueError, match=r"expected shape \('N', 8\).*\(3, 9\)"):
    generator(tf.zeros([3, 9]))
  with pytest.raises(ValueError, match="received"):
    generator(tf.zeros([8]))


def test_encoder_outputs(smoke_model):
  x = tf.random.uniform([4, 32, 32, 3], -1, 1)
  out = smoke_model.encode(x, training=True)
  assert set(out) == ENCODER_KEYS
  assert out["z_sample"].shape == (4, 16)
  assert out["avepool_feat"].shape == (4, 4 * 4 * 8)
  assert out["bn_crelu_feat"].shape == (4, 2 * 4 * 4 * 8)
  assert float(tf.reduce_min(out["z_stdev"])) > 0.0
  assert not np.allclose(out["z_sample"], out["z_mean"])
  eps = tf.zeros([4, 16])
  det = smoke_model.encode(x, training=False, epsilon=eps)
  np.testing.assert_allclose(det["z_sample"], det["z_mean"])


@pytest.mark.parametrize("mode", ["deterministic", "uniform"])
def test_encoder_latent_modes(mode):
  encoder = networks.Encoder(resolution=32, base_channels=2,
                             units_per_stage=(1, 1), stem="small", z_dim=6,
                             latent_mode=mode, mlp_width=8)
  out = encoder(tf.random.uniform([3, 32, 32, 3], -1, 1), training=True)
  np.testing.assert_array_equal(out["z_stdev"], 0.0)
  np.testing.assert_array_equal(out["z_sample"], out["z_mean"])
  assert encoder.sigma_hat is None
  if mode == "uniform":
    assert float(tf.reduce_max(tf.abs(out["z_sample"]))) < 1.0


@pytest.mark.parametrize("architecture", ["resnet_v2", "revnet"])
def test_encoder_any_resolution_and_architecture(architecture):
  for resolution in (32, 48, 64):
    encoder = networks.Encoder(resolution=resolution,
                               architecture=architecture, base_channels=2,
                               width=2, units_per_stage=(2, 2), z_dim=6,
                               mlp_width=8)
    out = encoder(tf.zeros([2, resolution, resolution, 3]))
    assert out["avepool_feat"].shape == (2, 2 * 4 * 2 * 2)


def test_revnet_units_are_all_reversible_and_resnet_units_are_not():
  revnet = networks.Encoder(resolution=32, architecture="revnet",
                            base_channels=2, units_per_stage=(3,), z_dim=4,
                            mlp_width=8, stem="small")
  assert [type(u).__name__ for u in revnet.units] == ["ReversibleUnit"] * 3
  resnet = networks.Encoder(resolution=32, base_channels=2,
                            units_per_stage=(3,), z_dim=4, mlp_width=8,
                            stem="small")
  assert [type(u).__name__ for u in resnet.units] == ["BottleneckUnitV2"] * 3
  unit = revnet.units[1]
  x = tf.random.normal([2, 8, 8, 8])
  y = unit(x, training=False)
  # Invert [x2, x1 + f(x2)]: x2 is the first half, x1 = y1 - f(x2).
  x2, y1 = tf.split(y, 2, axis=-1)
  x1 = y1 - unit.f(x2, training=False)
  np.testing.assert_allclose(tf.concat([x1, x2], -1), x, atol=1e-5)


def test_encoder_rejects_wrong_image_size(smoke_model):
  with pytest.raises(ValueError,
                     match=r"expected shape \('N', 32, 32, 3\).*\(2, 64, 64, 3\)"):
    smoke_model.encode(tf.zeros([2, 64, 64, 3]))
  with pytest.raises(ValueError, match="received"):
    smoke_model.encode(tf.zeros([32, 32, 3]))
  with pytest.raises(ValueError, match="latent_mode"):
    networks.Encoder(resolution=32, latent_mode="gaussian")


def test_discriminator_scores_and_switches(smoke_model):
  x = tf.random.uniform([4, 32, 32, 3], -1, 1)
  z = smoke_model.prior.sample(4)
  scores = smoke_model.discriminate(x, z, training=True)
  assert set(scores) == {"score_x", "score_z", "score_xz", "features_x"}
  for key in ("score_x", "score_z", "score_xz"):
    assert scores[key].shape == (4,)
  assert scores["features_x"].shape == (4, 4 * 8)
  standard = networks.Discriminator(resolution=32, ch=8, z_dim=16,
                                    use_score_z=False, use_score_xz=False)
  assert standard.h_net is None and standard.j_net is None
  out = standard((x, None))
  assert set(out) == {"score_x", "features_x"}
  z_only = networks.Discriminator(resolution=32, ch=8, z_dim=16, mlp_width=8,
                                  use_score_x=False, use_score_xz=False)
  assert set(z_only((x, z))) == {"score_z", "features_x"}


def test_discriminator_rejects_wrong_shapes(smoke_model):
  z = tf.zeros([2, 16])
  with pytest.raises(ValueError, match=r"Discriminator input x.*\(2, 16, 16, 3\)"):
    smoke_model.discriminate(tf.zeros([2, 16, 16, 3]), z)
  with pytest.raises(ValueError, match=r"Discriminator input z.*\('N', 16\).*\(2, 15\)"):
    smoke_model.discriminate(tf.zeros([2, 32, 32, 3]), tf.zeros([2, 15]))
  with pytest.raises(ValueError, match="without z"):
    smoke_model.discriminate(tf.zeros([2, 32, 32, 3]), None)


def test_prior_distributions():
  normal = networks.Prior(z_dim=5)
  sample = normal.sample(2000, seed=tf.constant([1, 2]))
  assert sample.shape == (2000, 5)
  assert abs(float(tf.math.reduce_std(sample)) - 1.0) < 0.05
  np.testing.assert_array_equal(sample, normal.sample(2000, seed=[1, 2]))
  uniform = networks.Prior(z_dim=5, distribution="uniform")
  u = uniform.sample(2000, seed=[1, 2]).numpy()
  assert u.min() >= -1.0 and u.max() <= 1.0 and u.min() < -0.9
  with pytest.raises(ValueError, match="normal"):
    networks.Prior(z_dim=5, distribution="laplace")


def test_model_rejects_mismatched_parts():
  with pytest.raises(ValueError, match="z_dim"):
    config.parse([SMOKE_GIN], ["prior.z_dim = 12"])
    config.build_model()
  with pytest.raises(ValueError, match="uniform"):
    config.parse([SMOKE_GIN], ['prior.distribution = "uniform"'])
    config.build_model()
  with pytest.raises(ValueError, match="encoder is required"):
    config.parse([SMOKE_GIN], ["bigbigan.encoder = None"])
    config.build_model()


def test_gin_typo_is_a_clear_error():
  with pytest.raises(ValueError, match="generator.*chh"):
    config.parse([SMOKE_GIN], ["generator.chh = 3"])
  with pytest.raises(ValueError):
    config.parse(["gin/no_such_file.gin"])


def test_high_res_encoder_images_are_pooled_for_d():
  config.parse([SMOKE_GIN], ["encoder.resolution = 64"])
  model = config.build_model()
  x = tf.random.uniform([2, 64, 64, 3], -1, 1)
  pooled = model.pool_for_discriminator(x)
  np.testing.assert_allclose(
      pooled, tf.nn.avg_pool2d(x, 2, 2, "VALID"), atol=1e-6)
  assert model.discriminate(pooled, model.encode(x)["z_mean"])[
      "score_xz"].shape == (2,)


# Figures at paper size (stated in the networks' docstrings).
G128_PARAMS = 70_306_116
COMPARE_GAN_G128 = 70.4e6
RESNET50_BACKBONE = 23_500_352
D128_F_PARAMS = 86_446_370
D128_PARAMS = 160_375_076
REVNET50X4_BACKBONE = 85_765_632
REVNET50X4_TOTAL = 204_238_576
REVNET50_BACKBONE = 5_408_640
REVNET50_TOTAL = 73_549_936
PAPER_REVNET50X4 = 86e6


def _backbone_params(encoder):
  return count_params(encoder.stem_conv, encoder.final_bn, *encoder.units)


def test_paper_size_parameter_counts():
  """Counted on shape-only builds (zero kernels, convolutions that return
  zeros of their output shape): the orthogonal initialisation of the huge
  kernels would take most of a minute and changes no shape."""
  config.parse([])
  with conftest.shape_only_builds():
    generator = networks.Generator(resolution=128, ch=96, z_dim=120)
    resnet = networks.Encoder(resolution=128, architecture="resnet_v2")
    features = resnet(tf.zeros([1, 128, 128, 3]))
    discriminator = networks.Discriminator(resolution=128, ch=96, z_dim=120)
  g_params = count_params(generator)
  print(f"G 128x128 ch=96: {g_params:,}")
  assert g_params == G128_PARAMS
  assert abs(g_params - COMPARE_GAN_G128) / COMPARE_GAN_G128 < 0.02

  print(f"E ResNet-v2-50: backbone {_backbone_params(resnet):,}, "
        f"total {count_params(resnet):,}")
  assert _backbone_params(resnet) == RESNET50_BACKBONE
  assert features["avepool_feat"].shape == (1, 2048)

  f_params = count_params(*discriminator.blocks,
                          *discriminator.attention.values(),
                          discriminator.score_x_head)
  print(f"D 128: F+s_x {f_params:,}, total {count_params(discriminator):,}")
  assert f_params == D128_F_PARAMS
  assert count_params(discriminator) == D128_PARAMS


def test_paper_size_revnet_parameter_counts():
  revnet = networks.Encoder(resolution=128, architecture="revnet", width=4)
  backbone, total = _backbone_params(revnet), count_params(revnet)
  print(f"E RevNet-50 x4: backbone {backbone:,}, total {total:,}")
  assert abs(backbone - PAPER_REVNET50X4) / PAPER_REVNET50X4 < 0.05
  assert tuple(revnet.stem_conv.kernel.shape) == (7, 7, 3, 1024)
  assert backbone == REVNET50X4_BACKBONE
  assert total == REVNET50X4_TOTAL
  assert revnet(tf.zeros([1, 128, 128, 3]))["avepool_feat"].shape == (1, 8192)
  del revnet
  revnet = networks.Encoder(resolution=128, architecture="revnet")
  print(f"E RevNet-50 x1: backbone {_backbone_params(revnet):,}, "
        f"total {count_params(revnet):,}")
  assert _backbone_params(revnet) == REVNET50_BACKBONE
  assert count_params(revnet) == REVNET50_TOTAL


def test_resnet101_has_33_units_and_widths_scale_channels():
  deep = networks.Encoder(resolution=32, depth=101, base_channels=2, z_dim=4,
                          mlp_width=8, stem="small")
  assert len(deep.units) == 3 + 4 + 23 + 3
  wide = networks.Encoder(resolution=32, base_channels=2, width=4, z_dim=4,
                          units_per_stage=(1, 1), mlp_width=8, stem="small")
  assert wide(tf.zeros([1, 32, 32, 3]))["avepool_feat"].shape == (1, 2 * 4 * 4 * 2)
  with pytest.raises(ValueError, match="depth"):
    networks.Encoder(resolution=32, architecture="revnet", depth=101)


def test_seeded_clone_depends_on_the_seed_alone():
  enc = networks.Encoder(resolution=32, base_channels=4,
                         units_per_stage=(1, 1, 1), stem="small", z_dim=8,
                         latent_mode="deterministic", mlp_width=8,
                         mlp_blocks=1)
  same = lambda a, b: all(np.array_equal(v.numpy(), w.numpy())
                          for v, w in zip(a.weights, b.weights))
  first = common.clone(enc, seed=3)
  random.seed(123)  # The caller's random state must not matter...
  before = random.getstate()
  second = common.clone(enc, seed=3)
  assert random.getstate() == before  # ...nor change.
  assert same(first, second)
  assert not same(first, common.clone(enc, seed=4))
  assert not same(first, common.clone(enc))
  assert not same(first, enc)
