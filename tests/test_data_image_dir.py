"""Users' own images: labelled folders, the held-out split, bad input, and a
model trained on a folder evaluated on labelled folders (its model_dir and
its exported module)."""

import io
import json
import logging
import os
import pathlib
import types

import numpy as np
from absl import flags
import pytest
import tensorflow as tf
from PIL import Image

from bigbigan_tf import checkpoints
from bigbigan_tf import config
from bigbigan_tf import data
from bigbigan_tf import export
from bigbigan_tf import restore
from bigbigan_tf import training
from bigbigan_tf.data import image_dir as image_dir_lib
from bigbigan_tf.evaluation import evaluator
from bigbigan_tf.evaluation import inversion
from bigbigan_tf.evaluation import linear_probe as probe_lib
from bigbigan_tf.evaluation import model_dir as model_dir_eval
from bigbigan_tf.networks import common

ROOT = pathlib.Path(__file__).resolve().parents[1]
SMOKE_GIN = str(ROOT / "gin" / "smoke.gin")
COLOURS = {"blue": (20, 40, 230), "green": (30, 220, 40), "red": (235, 25, 30)}


def _save(path: pathlib.Path, image: Image.Image, **kwargs) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  image.save(path, **kwargs)


def _noisy(colour, rng, shape=(24, 24)) -> np.ndarray:
  noise = rng.integers(-25, 26, (*shape, 3))
  return np.clip(np.asarray(colour) + noise, 0, 255).astype(np.uint8)


def _write_labelled(root: pathlib.Path, seed: int, per_class: int = 6,
                    extras: bool = True) -> pathlib.Path:
  """Class folders of noisy solid colours; with `extras`, one grayscale,
  RGBA, palette and odd-sized (nested, upper-case) file, two bad files and
  a text file."""
  rng = np.random.default_rng(seed)
  for name, colour in COLOURS.items():
    for i in range(per_class):
      _save(root / name / f"{i:02d}.png", Image.fromarray(_noisy(colour, rng)))
  if extras:
    red = COLOURS["red"]
    _save(root / "blue" / "gray.png",
          Image.fromarray(np.full([20, 20], 90, np.uint8), "L"))
    rgba = np.concatenate([_noisy(red, rng), rng.integers(
        0, 256, (24, 24, 1)).astype(np.uint8)], -1)
    _save(root / "red" / "rgba.png", Image.fromarray(rgba, "RGBA"))
    _save(root / "red" / "palette.png",
          Image.fromarray(_noisy(red, rng)).convert(
              "P", palette=Image.ADAPTIVE, colors=8))
    _save(root / "red" / "nested" / "deeper" / "odd.JPG",
          Image.fromarray(_noisy(red, rng, (17, 30))), quality=95)
    (root / "red" / "broken.png").write_bytes(
        (root / "red" / "00.png").read_bytes()[:60])
    (root / "blue" / "text.jpg").write_text("not a JPEG at all")
    (root / "notes.txt").write_text("ignored: no image extension")
  return root


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> pathlib.Path:
  return _write_labelled(tmp_path_factory.mktemp("folders") / "photos", 0)


# --------------------------------------------------------------------------
# Layout, decoding, labels.
# --------------------------------------------------------------------------


def test_labelled_folder_classes_counts_and_bad_files(labelled):
  folder = data.scan_image_folder(labelled)
  assert folder.class_names == ("blue", "green", "red")
  # Nested files belong to their class folder; ".JPG" counts as an image.
  assert folder.class_counts() == {"blue": 7, "green": 6, "red": 9}
  assert any(path.endswith("nested/deeper/odd.JPG") for path in folder.paths)
  assert sorted(pathlib.Path(p).name for p in folder.bad_paths) == [
      "broken.png", "text.jpg"]
  assert folder.ignored_files == 1
  # Labels by sorted class name, rows sorted by class.
  for path, label in zip(folder.paths, folder.labels):
    assert pathlib.Path(path).relative_to(labelled).parts[0] == (
        folder.class_names[label])
  record = image_dir_lib.class_record(folder)
  assert record["classes"] == ["blue", "green", "red"]
  assert record["undecodable_files"] == 2 and record["num_images"] == 22
  assert len(record["undecodable_examples"]) == 2


def test_pipeline_labels_and_bad_file_warning(labelled, caplog):
  image_dir_lib._WARNED.clear()
  with caplog.at_level(logging.WARNING):
    images, labels = data.load_arrays("image_dir", "train", 16,
                                      image_dir=str(labelled))
  assert "Skipping 2 of 24 image files" in caplog.text
  assert "broken.png" in caplog.text
  np.testing.assert_array_equal(np.bincount(labels), [7, 6, 9])
  # Each class's colour is its brightest channel (the gray image aside).
  brightest = np.argmax(images.mean(axis=(1, 2)), -1)
  folder = data.scan_image_folder(labelled)
  gray = [i for i, p in enumerate(folder.paths) if p.endswith("gray.png")]
  keep = np.setdiff1d(np.arange(len(labels)), gray)
  np.testing.assert_array_equal(brightest[keep],
                                np.array([2, 1, 0])[labels[keep]])


def _decoded(path) -> np.ndarray:
  return image_dir_lib.decode_image_file_contents(
      tf.io.read_file(str(path))).numpy()


def test_grayscale_rgba_and_palette_images_come_out_as_rgb(labelled):
  for name in ("blue/gray.png", "red/rgba.png", "red/palette.png"):
    expected = np.asarray(Image.open(labelled / name).convert("RGB"))
    np.testing.assert_array_equal(_decoded(labelled / name), expected, name)
  # Alpha is dropped, not composited: RGBA keeps the stored colours.
  rgba = np.asarray(Image.open(labelled / "red" / "rgba.png"))
  np.testing.assert_array_equal(_decoded(labelled / "red" / "rgba.png"),
                                rgba[..., :3])


def test_colour_palette_bmp_is_reported_not_misread(tmp_path):
  rng = np.random.default_rng(1)
  colour = Image.fromarray(rng.integers(0, 256, (8, 8, 3)).astype(np.uint8))
  _save(tmp_path / "a" / "palette.bmp",
        colour.convert("P", palette=Image.ADAPTIVE, colors=16))
  _save(tmp_path / "a" / "grey.bmp",
        Image.fromarray(rng.integers(0, 256, (8, 8)).astype(np.uint8), "L"))
  folder = data.scan_image_folder(tmp_path)
  assert [pathlib.Path(p).name for p in folder.paths] == ["grey.bmp"]
  (path, reason), = folder.bad_files
  assert path.endswith("palette.bmp") and "palette BMP" in reason
  grey = np.asarray(Image.open(tmp_path / "a" / "grey.bmp").convert("RGB"))
  np.testing.assert_array_equal(_decoded(tmp_path / "a" / "grey.bmp"), grey)


def test_odd_sized_images_are_centre_cropped_in_training_and_evaluation(
    tmp_path):
  # 16 x 32: the central 16 x 16 square is red, the sides blue.
  image = np.zeros([16, 32, 3], np.uint8)
  image[:, :, 2] = 255
  image[:, 8:24] = (255, 0, 0)
  _save(tmp_path / "wide.png", Image.fromarray(image))
  evaluated, _ = data.load_arrays("image_dir", "train", 8,
                                  image_dir=str(tmp_path))
  trained = next(iter(data.make_dataset(
      "image_dir", "train", 8, 1, image_dir=str(tmp_path), seed=0,
      augmentation="none")))[data.IMAGE].numpy()
  for batch in (evaluated, trained):
    assert batch.shape == (1, 8, 8, 3)
    np.testing.assert_allclose(batch[0, ..., 0], 1.0, atol=1e-5)
    np.testing.assert_allclose(batch[0, ..., 2], -1.0, atol=1e-5)


def test_flat_folder_stays_unlabelled_and_trains(tmp_path):
  rng = np.random.default_rng(2)
  for i in range(3):
    _save(tmp_path / f"{i}.png", Image.fromarray(_noisy((90, 90, 90), rng)))
  _save(tmp_path / "sub" / "x.PNG", Image.fromarray(_noisy((0, 0, 0), rng)))
  folder = data.scan_image_folder(tmp_path)
  assert not folder.labelled and len(folder.paths) == 4
  batch = next(iter(data.make_dataset(
      "image_dir", "train", 16, 8, image_dir=str(tmp_path), seed=0,
      with_labels=True)))
  assert batch[data.IMAGE].shape == (8, 16, 16, 3)
  np.testing.assert_array_equal(batch[data.LABEL], [data.UNLABELLED] * 8)


def test_folders_are_read_through_tf_io_gfile():
  # TensorFlow's in-memory filesystem exists only for tf.io.gfile (as a
  # gs:// bucket does): os and pathlib cannot see it.
  root = "ram://bigbigan_image_dir_test/photos"
  rng = np.random.default_rng(3)
  for name, colour in COLOURS.items():
    for i in range(2):
      buffer = io.BytesIO()
      Image.fromarray(_noisy(colour, rng, (8, 8))).save(buffer, "PNG")
      tf.io.gfile.makedirs(f"{root}/{name}")
      tf.io.write_file(f"{root}/{name}/{i}.png", buffer.getvalue())
  tf.io.write_file(f"{root}/red/bad.png", b"\x89PNG broken")
  folder = data.scan_image_folder(root)
  assert folder.class_names == ("blue", "green", "red")
  assert len(folder.paths) == 6 and len(folder.bad_files) == 1
  _, labels = data.load_arrays("image_dir", "test", 8, image_dir=root,
                               validation_fraction=0.5)
  np.testing.assert_array_equal(labels, [0, 1, 2])


# --------------------------------------------------------------------------
# The held-out split.
# --------------------------------------------------------------------------


def test_split_is_stratified_deterministic_and_disjoint(labelled):
  folder = data.scan_image_folder(labelled)
  train, held_out = data.split_indices(folder, 0.3)
  assert not set(train) & set(held_out)
  np.testing.assert_array_equal(np.sort(np.concatenate([train, held_out])),
                                np.arange(len(folder.paths)))
  # round(0.3 * n) of each class: 7 -> 2, 6 -> 2, 9 -> 3.
  assert folder.class_counts(held_out) == {"blue": 2, "green": 2, "red": 3}
  again = data.split_indices(data.scan_image_folder(labelled), 0.3)
  np.testing.assert_array_equal(again[0], train)
  np.testing.assert_array_equal(again[1], held_out)
  # The pipeline's "train" and "test" are these two parts.
  _, test_labels = data.load_arrays("image_dir", "test", 8,
                                    image_dir=str(labelled),
                                    validation_fraction=0.3)
  np.testing.assert_array_equal(test_labels, folder.labels[held_out])
  with pytest.raises(ValueError, match="split.*'train'.*'validation'"):
    data.load_arrays("image_dir", "train[:50%]", 8, image_dir=str(labelled),
                     validation_fraction=0.3)


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.2, True, "0.2"])
def test_validation_fraction_outside_0_1_is_refused(labelled, fraction):
  with pytest.raises(ValueError, match="strictly between 0 and 1"):
    data.make_dataset("image_dir", "train", 8, 2, image_dir=str(labelled),
                      validation_fraction=fraction)


def test_validation_fraction_that_empties_a_class_names_it(labelled):
  folder = data.scan_image_folder(labelled)
  # green has 6 images, blue 7, red 9.
  with pytest.raises(ValueError, match=r"0 of the 6 images of class 'green' "
                     r".*photos/green.*\[0.0833, 0.917\)"):
    data.split_indices(folder, 0.08)
  with pytest.raises(ValueError, match="6 of the 6 images of class 'green'"):
    data.split_indices(folder, 0.92)


def test_validation_fraction_is_only_for_image_folders():
  with pytest.raises(ValueError, match="validation_fraction.*mnist5k"):
    data.make_dataset("mnist5k", "train", 8, 2, validation_fraction=0.2)


# --------------------------------------------------------------------------
# Bad folders.
# --------------------------------------------------------------------------


def test_missing_folder_and_file_are_refused(tmp_path):
  with pytest.raises(ValueError, match="nowhere.*does not exist"):
    data.scan_image_folder(tmp_path / "nowhere")
  (tmp_path / "file.png").write_bytes(b"")
  with pytest.raises(ValueError, match="file.png.*is not a directory"):
    data.make_dataset("image_dir", "train", 8, 2,
                      image_dir=str(tmp_path / "file.png"))


def test_empty_class_folder_is_refused(tmp_path):
  root = _write_labelled(tmp_path / "photos", 4, per_class=1, extras=False)
  (root / "empty").mkdir()
  (root / "corrupt").mkdir()
  (root / "corrupt" / "x.jpg").write_text("no")
  with pytest.raises(ValueError) as error:
    data.scan_image_folder(root)
  message = str(error.value)
  assert "2 hold none" in message
  assert str(root / "empty") in message and str(root / "corrupt") in message


def _stand_in_model():
  return types.SimpleNamespace(encoder=lambda *args, **kwargs: None)


def _evaluate_with(**settings):
  return evaluator.evaluate_model(_stand_in_model(), **settings)


def test_evaluation_needs_two_classes_and_labelled_folders(tmp_path,
                                                           labelled):
  single = tmp_path / "single"
  _save(single / "cats" / "a.png", Image.new("RGB", (8, 8)))
  _save(single / "cats" / "b.png", Image.new("RGB", (8, 8)))
  with pytest.raises(ValueError, match="at least 2 class folders.*single.*"
                     r"\['cats'\]"):
    _evaluate_with(dataset="image_dir", image_dir=str(single),
                   validation_fraction=0.5)
  flat = tmp_path / "flat"
  _save(flat / "a.png", Image.new("RGB", (8, 8)))
  with pytest.raises(ValueError, match="flat.*holds its images directly"):
    _evaluate_with(dataset="image_dir", train_image_dir=str(flat),
                   test_image_dir=str(labelled))
  _save(single / "dogs" / "c.png", Image.new("RGB", (8, 8)))
  _save(single / "loose.png", Image.new("RGB", (8, 8)))
  with pytest.raises(ValueError, match="also holds 1 images directly.*loose"):
    _evaluate_with(dataset="image_dir", train_image_dir=str(labelled),
                   test_image_dir=str(single))


def test_evaluation_folders_must_share_their_classes(tmp_path, labelled):
  other = tmp_path / "other"
  for name in ("blue", "red", "violet"):
    _save(other / name / "a.png", Image.new("RGB", (8, 8)))
  with pytest.raises(ValueError, match=r"only in .*photos.*\['green'\], "
                     r"only in .*other.*\['violet'\]"):
    _evaluate_with(dataset="image_dir", train_image_dir=str(labelled),
                   test_image_dir=str(other))


@pytest.mark.parametrize("settings, expected", [
    (dict(dataset="image_dir"), "none of them"),
    (dict(dataset="image_dir", image_dir="x"), "evaluation.image_dir = 'x'"),
    (dict(dataset="image_dir", image_dir="x", validation_fraction=0.2,
          test_image_dir="y"), "either"),
    (dict(dataset="image_dir", train_image_dir="x"), "test_image_dir"),
    (dict(dataset="mnist5k", image_dir="x"), "only apply with"),
])
def test_evaluation_folder_settings_are_checked(settings, expected):
  with pytest.raises(ValueError, match=expected):
    _evaluate_with(**settings)


# --------------------------------------------------------------------------
# End to end: train on a folder, evaluate on labelled folders.
# --------------------------------------------------------------------------

EVAL_BINDINGS = ["evaluation.random_encoder_baseline = True",
                 "evaluation.probe_steps = 100",
                 "evaluation.inversion_samples = 50",
                 "evaluation.standing_stats_examples = 16"]


def _expected_figures(model, train_source, test_source, probe_steps,
                      standing_stats_examples=None, inversion_samples=None):
  """What evaluate_model must report for `model` on image folders (seed 0),
  recomputed from its parts: E's features of each split (load_arrays with
  the folder arguments), the seeded probes and kNN on them, the random
  encoder (seed 0, standing statistics on the first training images) when
  `standing_stats_examples` is given, a seeded probe on D-resolution pixels
  classifying the reconstructions, the joint pairing scores, and the
  inversion error when `inversion_samples` is given."""
  (train_x, train_y), (test_x, test_y) = (
      data.load_arrays("image_dir", resolution=model.encoder_resolution,
                       **source) for source in (train_source, test_source))
  figures = {}

  def probes(encoder, prefix):
    train_f, test_f = (evaluator.encoder_features(encoder, x)
                       for x in (train_x, test_x))
    for feature_type in ("avepool", "bn_crelu"):
      result = probe_lib.linear_probe(train_f, train_y, test_f, test_y,
                                      feature_type=feature_type,
                                      num_steps=probe_steps)
      figures[f"{prefix}linear_probe_{feature_type}_top1"] = result.top1
      figures[f"{prefix}linear_probe_{feature_type}_top5"] = result.top5
    return train_f, test_f

  train_f, test_f = probes(model.encoder, "")
  figures["knn5_top1"] = probe_lib.knn_accuracy(
      train_f, train_y, test_f, test_y, k=5, metric="cosine")
  train_z, test_z = (evaluator.encoder_features(model.encoder, x,
                                                key=common.Z_MEAN)
                     for x in (train_x, test_x))
  figures["latent_knn5_top1"] = probe_lib.knn_accuracy(
      train_z, train_y, test_z, test_y, k=5, metric="cosine")
  if standing_stats_examples is not None:
    fresh = common.clone(model.encoder, seed=0)
    evaluator.standing_statistics(
        fresh, [(train_x[:standing_stats_examples],
                 train_y[:standing_stats_examples])])
    probes(fresh, "random_encoder_")
  pixels = lambda x: np.asarray(model.pool_for_discriminator(
      tf.constant(x))).reshape(len(x), -1)
  pixel_probe = probe_lib.linear_probe(pixels(train_x), train_y,
                                       pixels(test_x), test_y,
                                       num_steps=probe_steps)
  figures["pixel_linear_probe_top1"] = pixel_probe.top1
  classify = lambda flat: np.argmax(
      flat @ pixel_probe.weights + pixel_probe.bias, axis=-1)
  recon_class = classify(
      model.reconstruct(test_x, training=False).numpy().reshape(
          len(test_x), -1))
  figures["reconstruction_same_class"] = np.mean(
      classify(pixels(test_x)) == recon_class)
  figures["reconstruction_keeps_label"] = np.mean(recon_class == test_y)
  figures.update(evaluator.joint_pairing_scores(model, [(test_x, test_y)],
                                                seed=0))
  if inversion_samples is not None:
    figures["inversion_error"] = inversion.inversion_error(
        model, model.encoder, inversion_samples, seed=0)
  return figures


@pytest.mark.slow
def test_train_on_a_folder_then_evaluate_run_and_module(labelled, tmp_path,
                                                        monkeypatch):
  model_dir = str(tmp_path / "run")
  config.parse([SMOKE_GIN], [
      "make_dataset.name = 'image_dir'",
      f"make_dataset.image_dir = '{labelled}'",
      "make_dataset.validation_fraction = 0.3",
      "train.train_steps = 2", "train.batch_size = 8",
      "train.steps_per_loop = 1", "train.checkpoint_every = 2",
      "train.image_every = 1000", "train.standing_stats_batches = 1",
      "trainer.d_steps = 1", "trainer.gradient_diagnostics = False"])
  training.train(model_dir)
  classes = json.loads(
      (tmp_path / "run" / checkpoints.CLASSES_FILE).read_text())
  assert classes["classes"] == ["blue", "green", "red"]
  # The training part of the 0.3 split: the held-out images are not seen.
  assert classes["images_per_class"] == {"blue": 5, "green": 4, "red": 6}
  assert classes["undecodable_files"] == 2

  # The model the evaluation restores is exported below (restoring it
  # again would only repeat the work).
  restored = []
  restore_model = restore.restore_inference_model
  monkeypatch.setattr(restore, "restore_inference_model",
                      lambda *args: restored.append(restore_model(*args))
                      or restored[-1])
  results = model_dir_eval.evaluate_model_dir(
      model_dir, None, (), EVAL_BINDINGS + [
          "evaluation.dataset = 'image_dir'",
          f"evaluation.image_dir = '{labelled}'",
          "evaluation.validation_fraction = 0.3"])
  # The same computations on the same weights and images in this process:
  # the same figures, exactly.
  folder = {"image_dir": str(labelled), "validation_fraction": 0.3}
  expected = _expected_figures(
      restored[0], {"split": "train", **folder}, {"split": "test", **folder},
      probe_steps=100, standing_stats_examples=16, inversion_samples=50)
  for key in ("linear_probe_avepool_top1", "linear_probe_avepool_top5",
              "linear_probe_bn_crelu_top1", "linear_probe_bn_crelu_top5",
              "knn5_top1", "latent_knn5_top1", "pixel_linear_probe_top1",
              "random_encoder_linear_probe_avepool_top1",
              "random_encoder_linear_probe_bn_crelu_top1",
              "reconstruction_same_class", "reconstruction_keeps_label",
              "joint_pairing_encoder_pairs", "inversion_error"):
    assert results[key] == expected[key], key
  assert not any(key.startswith("reconstruction_judge") for key in results)
  # Solid colours: even raw pixels tell the classes apart.
  assert results["pixel_linear_probe_top1"] > 0.6
  assert json.loads((tmp_path / "run" / "eval.json").read_text()) == results
  eval_classes = json.loads((tmp_path / "run" / checkpoints.EVAL_DIR /
                             checkpoints.CLASSES_FILE).read_text())
  assert eval_classes["classes"] == ["blue", "green", "red"]
  assert eval_classes["test"]["images_per_class"] == {
      "blue": 2, "green": 2, "red": 3}
  assert eval_classes["train"]["undecodable_files"] == 2

  # Transfer: the exported module on two other labelled folders.
  probe_train = _write_labelled(tmp_path / "probe_train", 6, per_class=4,
                                extras=False)
  probe_test = _write_labelled(tmp_path / "probe_test", 7, per_class=2,
                               extras=False)
  paths = export.export_modules(restored[0], str(tmp_path / "export"))
  # Streamed this time (features on disk): the same figures' keys.
  config.parse([os.path.join(model_dir, "config.gin")], EVAL_BINDINGS + [
      f"evaluation.feature_dir = '{tmp_path / 'features'}'",
      "evaluation.dataset = 'image_dir'",
      f"evaluation.train_image_dir = '{probe_train}'",
      f"evaluation.test_image_dir = '{probe_test}'"])
  class_index = tmp_path / "hub_eval" / checkpoints.CLASSES_FILE
  hub_results = evaluator.evaluate_model(
      export.ExportedBigBiGAN(paths["bigbigan"]),
      class_index_path=str(class_index))
  # The module has no random encoder to compare with; all else is there.
  assert hub_results.keys() == {
      key for key in results if not key.startswith("random_encoder_")}
  # Those of the model it was exported from, on the same folders. The
  # module's graphs may round differently in the last bits (tests/
  # test_export.py allows 1e-5): abs=1e-6 leaves the inversion error that
  # rounding and allows no flipped prediction (one moves a fraction of 6 or
  # 12 images by at least 1/12).
  hub_expected = _expected_figures(
      restored[0], {"split": "train", "image_dir": str(probe_train)},
      {"split": "test", "image_dir": str(probe_test)}, probe_steps=100,
      inversion_samples=50)
  for key, value in hub_expected.items():
    assert hub_results[key] == pytest.approx(value, abs=1e-6), key
  hub_classes = json.loads(class_index.read_text())
  assert hub_classes["train"]["images_per_class"] == {
      "blue": 4, "green": 4, "red": 4}
  assert hub_classes["test"]["num_images"] == 6


def test_evaluate_tool_writes_a_module_class_index_beside_output_json(
    monkeypatch, tmp_path):
  # The installed module, imported once per process: its absl flags are
  # defined once however many tests use it.
  from bigbigan_tf.tools import evaluate as tool  # pylint: disable=g-import-not-at-top
  calls = []
  monkeypatch.setattr(tool.export, "ExportedBigBiGAN", lambda handle: handle)
  monkeypatch.setattr(
      tool.evaluator, "evaluate_model",
      lambda model, **kwargs: calls.append((model, kwargs)) or {"knn5": 1.0})
  (tmp_path / "out").mkdir()
  argv = ["evaluate.py", "--hub_module=EXPORT/bigbigan",
          "--gin_bindings=evaluation.dataset = 'image_dir'",
          f"--output_json={tmp_path / 'out' / 'eval.json'}"]
  try:
    flags.FLAGS(argv)
    tool.main(argv)
  finally:
    flags.FLAGS.unparse_flags()
  (model, kwargs), = calls
  assert model == "EXPORT/bigbigan"
  assert kwargs == {"class_index_path": str(tmp_path / "out" /
                                            checkpoints.CLASSES_FILE)}
