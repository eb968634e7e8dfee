"""What users do with a trained model (bigbigan_tf.trained and the tools
bigbigan-encode, -reconstruct, -interpolate, -neighbours, -sample): on the
shared smoke run and on its export."""

import json
import os
import pathlib
import subprocess
import sys
import types

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from bigbigan_tf import export
from bigbigan_tf import trained
from bigbigan_tf.evaluation import images as images_lib

BIN = pathlib.Path(sys.executable).parent


def _write_images(folder):
  """Five images of other sizes and modes (grey, RGB, RGBA; png, jpg) and
  one file that is not an image."""
  rng = np.random.default_rng(0)
  folder.mkdir(parents=True, exist_ok=True)
  shapes = [((40, 30), "L", "png"), ((28, 28), "RGB", "png"),
            ((64, 48, 3), "RGB", "jpg"), ((33, 33, 4), "RGBA", "png"),
            ((50, 70, 3), "RGB", "png")]
  for i, (shape, mode, ext) in enumerate(shapes):
    pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
    if mode == "RGB" and pixels.ndim == 2:
      pixels = np.stack([pixels] * 3, -1)
    Image.fromarray(pixels, mode).save(folder / f"image_{i}.{ext}")
  (folder / "broken.png").write_bytes(b"not a png")
  return sorted(str(p) for p in folder.iterdir() if p.name != "broken.png")


@pytest.fixture(scope="module")
def models(smoke_run_dir, tmp_path_factory):
  """The smoke run's model and the same model exported."""
  model = trained.load(model_dir=smoke_run_dir)
  export_dir = tmp_path_factory.mktemp("trained_export") / "export"
  export.export_modules(model, str(export_dir))
  return {"model_dir": model,
          "export": trained.load(hub_module=str(export_dir / "bigbigan")),
          "export_dir": str(export_dir / "bigbigan")}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["model_dir", "export"])
def test_encode_reconstruct_neighbours_on_a_folder(models, kind, tmp_path):
  model = models[kind]
  good = _write_images(tmp_path / "photos")
  paths = trained.image_paths([str(tmp_path / "photos")])
  assert sorted(paths) == sorted(good + [str(tmp_path / "photos" /
                                             "broken.png")])
  images = trained.read_images(paths, model.encoder_resolution)
  assert images.paths == good  # In order; the broken file skipped.
  assert [p for p, _ in images.skipped] == [str(tmp_path / "photos" /
                                                "broken.png")]
  resolution = model.encoder_resolution
  assert images.pixels.shape == (5, resolution, resolution, 3)
  # The grey image became three equal channels.
  np.testing.assert_array_equal(images.pixels[0, ..., 0],
                                images.pixels[0, ..., 2])

  codes = trained.encode(model, images.pixels, batch_size=2)
  z_dim = model.z_dim
  assert codes["z_mean"].shape == (5, z_dim)
  assert codes["z_sample"].shape == (5, z_dim)
  assert codes["avepool_feat"].shape[0] == 5
  assert codes["bn_crelu_feat"].shape[1] == 2 * codes["avepool_feat"].shape[1]
  # Batching does not change an image's code.
  again = trained.encode(model, images.pixels[::-1], batch_size=5)
  np.testing.assert_allclose(again["z_mean"][::-1], codes["z_mean"],
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(
      codes["z_mean"],
      np.asarray(model.encoder(tf.constant(images.pixels),
                               training=False)["z_mean"]),
      rtol=1e-5, atol=1e-6)

  recons = trained.reconstruct(model, images.pixels, batch_size=2)
  assert recons.shape == (5, model.resolution, model.resolution, 3)
  np.testing.assert_allclose(
      recons, np.asarray(model.reconstruct(tf.constant(images.pixels))),
      rtol=1e-4, atol=1e-5)

  # Samples and walks decode prior latents with G.
  z = trained.sample_latents(z_dim, 3, seed=5)
  samples = trained.generate(model, z, batch_size=2)
  assert samples.shape == (3, model.resolution, model.resolution, 3)
  np.testing.assert_allclose(samples, np.asarray(model.generate(
      tf.constant(z), training=False)), rtol=1e-4, atol=1e-5)

  # A gallery holding copies of the queries: each query's nearest image is
  # its copy.
  gallery = np.concatenate([codes["avepool_feat"][::-1],
                            codes["avepool_feat"] * 3.0])
  order, distances = trained.nearest_neighbours(codes["avepool_feat"][:2],
                                                gallery, k=3)
  assert order.shape == distances.shape == (2, 3)
  assert list(order[:, 0]) in ([4, 3], [5, 6])
  assert distances[:, 0].max() < 1e-5
  # The three smallest of every gallery image's cosine distance, in order.
  queries = codes["avepool_feat"][:2].astype(np.float64)
  gallery = gallery.astype(np.float64)
  cosine = (queries @ gallery.T) / np.outer(np.linalg.norm(queries, axis=1),
                                            np.linalg.norm(gallery, axis=1))
  np.testing.assert_allclose(distances, np.sort(1 - cosine, axis=1)[:, :3],
                             atol=1e-9)


def test_interpolation_ends_and_spherical_norms():
  z = trained.sample_latents(6, 2, seed=3)
  line = trained.interpolate(z[0], z[1], 5)
  np.testing.assert_allclose(line[[0, -1]], z, rtol=1e-6)
  np.testing.assert_allclose(line[2], (z[0] + z[1]) / 2, rtol=1e-5)
  arc = trained.interpolate(z[0], z[1], 5, spherical=True)
  np.testing.assert_allclose(arc[[0, -1]], z, rtol=1e-5, atol=1e-6)
  norms = np.linalg.norm(arc, axis=1)
  np.testing.assert_allclose(
      norms, np.linspace(*np.linalg.norm(z, axis=1), 5), rtol=1e-5)
  # The arc's middle is off the straight line (unless z0 and z1 align).
  assert np.linalg.norm(arc[2] - line[2]) > 1e-3
  with pytest.raises(ValueError, match="at least 2 steps"):
    trained.interpolate(z[0], z[1], 1)


def test_latents_are_seeded_and_truncated():
  a = trained.sample_latents(16, 200, seed=1)
  np.testing.assert_array_equal(a, trained.sample_latents(16, 200, seed=1))
  assert not np.array_equal(a, trained.sample_latents(16, 200, seed=2))
  assert np.abs(a).max() > 2.0  # Untruncated: N(0, 1) reaches beyond 2.
  t = trained.sample_latents(16, 200, seed=1, truncation=0.5)
  assert np.abs(t).max() <= 0.5
  with pytest.raises(ValueError, match="positive truncation"):
    trained.sample_latents(16, 2, seed=1, truncation=0.0)


def test_bad_sources_and_neighbour_arguments_are_clear_errors(tmp_path):
  with pytest.raises(ValueError, match="nothing there"):
    trained.image_paths([str(tmp_path / "missing.png")])
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match="No image files"):
    trained.image_paths([str(tmp_path / "empty")])
  (tmp_path / "bad.png").write_bytes(b"nope")
  with pytest.raises(ValueError, match="None of the 1 files"):
    trained.read_images([str(tmp_path / "bad.png")], 32)
  with pytest.raises(ValueError, match="between 1 and the gallery's 2"):
    trained.nearest_neighbours(np.ones((1, 3)), np.ones((2, 3)), k=3)
  with pytest.raises(ValueError, match="exactly one of model_dir"):
    trained.load()
  with pytest.raises(ValueError, match="has no encoder"):
    trained.encode(types.SimpleNamespace(encoder=None), np.zeros((1, 8, 8, 3)))


def test_cell_labels_are_drawn_in_their_cells():
  grid = images_lib.image_grid(np.full((2, 40, 40, 3), 1.0), num_columns=2)
  labelled = trained.label_cells(grid, [["", "0.123"]], cell=40)
  changed = np.argwhere(np.any(labelled != grid, axis=-1))
  assert len(changed)  # Text was drawn ...
  assert changed[:, 1].min() >= 2 + 40 + 2  # ... in the second cell only,
  assert changed[:, 0].max() < 2 + 40  # within its row.


def _tool(name, *args, cwd):
  result = subprocess.run([str(BIN / name), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600,
                          check=False)
  assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
  return result


def _png(path):
  return np.asarray(Image.open(path).convert("RGB"))


@pytest.mark.slow
def test_the_five_tools_on_the_smoke_run(smoke_run_dir, models, tmp_path):
  """Each console script on the smoke run's export: its files hold what the
  library computes for the same images and seeds. (The figures are compared
  on the export: a model_dir's standing statistics are recomputed on
  loading, and this process's graph settings, tests/conftest.py, round them
  differently from the tool's; the tools on the model_dir itself are run
  too, for their files' shapes and names.)"""
  model = models["export"]
  good = _write_images(tmp_path / "photos")
  run = f"--hub_module={models['export_dir']}"
  images = trained.read_images(good, model.encoder_resolution)

  _tool("bigbigan-encode", f"--model_dir={smoke_run_dir}",
        f"--images={tmp_path / 'photos'}", "--output=run_codes.npz",
        cwd=tmp_path)
  run_codes = np.load(tmp_path / "run_codes.npz")
  assert list(run_codes["file_names"]) == good
  assert run_codes["z_mean"].shape == (5, model.z_dim)
  _tool("bigbigan-encode", run, f"--images={tmp_path / 'photos'}",
        "--output=codes.npz", "--csv=codes.csv", cwd=tmp_path)
  codes = np.load(tmp_path / "codes.npz")
  assert list(codes["file_names"]) == good
  expected = trained.encode(model, images.pixels)
  # z_sample is one random draw of E's stochastic latent: its shape only.
  assert codes["z_sample"].shape == expected["z_sample"].shape
  for key in ("z_mean", "avepool_feat", "bn_crelu_feat"):
    np.testing.assert_allclose(codes[key], expected[key], rtol=1e-4,
                               atol=1e-5, err_msg=key)
  lines = (tmp_path / "codes.csv").read_text().splitlines()
  assert len(lines) == 6 and lines[1].startswith(good[0] + ",")

  _tool("bigbigan-reconstruct", run, f"--images={good[0]}",
        f"--images={good[1]}", "--output=recons.png",
        "--per_image=recons", cwd=tmp_path)
  zoom = images_lib.display_zoom(model.resolution)
  recons = trained.reconstruct(model, images.pixels[:2])
  np.testing.assert_allclose(
      _png(tmp_path / "recons.png").astype(float),
      images_lib.reconstruction_grid(images.pixels[:2], recons,
                                     pairs_per_row=4, zoom=zoom), atol=1)
  assert sorted(os.listdir(tmp_path / "recons")) == ["image_0.png",
                                                     "image_1.png"]

  _tool("bigbigan-sample", run, "--num=6", "--seed=4", "--truncation=1.0",
        "--output=samples.png", cwd=tmp_path)
  samples = trained.generate(
      model, trained.sample_latents(model.z_dim, 6, 4, truncation=1.0))
  np.testing.assert_allclose(
      _png(tmp_path / "samples.png").astype(float),
      images_lib.image_grid(samples, zoom=zoom), atol=1)

  _tool("bigbigan-interpolate", run, "--seeds=1,2", "--steps=4",
        "--spherical", "--output=walk.png", cwd=tmp_path)
  z = np.concatenate([trained.sample_latents(model.z_dim, 1, s)
                      for s in (1, 2)])
  walk = trained.generate(model, trained.interpolate(z[0], z[1], 4, True))
  np.testing.assert_allclose(
      _png(tmp_path / "walk.png").astype(float),
      images_lib.image_grid(walk, num_columns=4, zoom=zoom), atol=1)

  # The gallery holds a copy of the first query.
  gallery = tmp_path / "gallery"
  gallery.mkdir()
  for path in good[1:]:
    (gallery / os.path.basename(path)).write_bytes(open(path, "rb").read())
  (gallery / "copy.png").write_bytes(open(good[0], "rb").read())
  for _ in range(2):  # The second run reads the gallery from the cache.
    result = _tool("bigbigan-neighbours", run, f"--queries={good[0]}",
                   f"--gallery={gallery}", "--k=3", "--output=nn.png",
                   "--features_cache=gallery.npz", cwd=tmp_path)
  assert "Gallery features from" in result.stderr
  found = json.loads((tmp_path / "nn.json").read_text())
  assert found[0]["query"] == good[0]
  first = found[0]["neighbours"][0]
  assert first["file"] == str(gallery / "copy.png")
  assert first["distance"] < 1e-5
  size = images_lib.display_zoom(model.encoder_resolution) * (
      model.encoder_resolution)
  assert _png(tmp_path / "nn.png").shape == (size + 4, 4 * (size + 2) + 2, 3)
