"""Learning curves of a training run, read from its TensorBoard events.

`read_scalars(model_dir)` collects every scalar summary the run wrote (the
training metrics of each inner loop and the `eval/...` figures of each
evaluation during training) as step-sorted arrays; `plot_learning_curves`
draws the four panels that show whether E learns to invert G: the linear
probe against the random encoder's, the reconstruction scores, the inversion
error, and the fraction of examples whose hinge is still active per loss
term. Events are read with `tf.io.gfile`, so `gs://` run directories work.
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf

# (tag, label) of the lines in each panel; tags missing from a run are left
# out of its plot.
PANELS = (
    ("Linear probe on the held-out split (BN+CReLU)", "top-1", (
        ("eval/linear_probe_bn_crelu_top1", "trained E"),
        ("eval/random_encoder_linear_probe_bn_crelu_top1", "random E"),
        ("eval/linear_probe_avepool_top1", "trained E, AvePool"),
        ("eval/latent_knn5_top1", "kNN-5 on E's z"),
    )),
    ("Reconstructions G(E(x)) keep the class", "fraction", (
        ("eval/reconstruction_judge_same_class", "by the CNN judge"),
        ("eval/reconstruction_same_class", "by the pixel probe"),
    )),
    ("Inversion error |E(G(z)) - z|^2 / mean |z - z'|^2", "error", (
        ("eval/inversion_error", "trained E"),
    )),
    ("Hinge still active (fraction of examples)", "fraction", ()),
)
HINGE_PREFIX = "hinge_active/"


def _event_files(model_dir: str) -> list[str]:
  # Only the run's own events: evaluation writes to model_dir/eval.
  pattern = os.path.join(model_dir, "events.out.tfevents.*")
  return sorted(tf.io.gfile.glob(pattern))


def _scalar_value(value) -> float | None:
  if value.HasField("tensor"):
    array = tf.make_ndarray(value.tensor)
    # Text (the operative config) and images are not scalars.
    numeric = array.dtype.kind in "biuf"
    return float(array) if numeric and array.size == 1 else None
  if value.HasField("simple_value"):
    return float(value.simple_value)
  return None


def read_scalars(model_dir: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Every scalar summary in the run directory's own event files.

  Returns:
    {tag: (steps int64 [n], values float64 [n])}, sorted by step; a step
    written twice (a resumed run repeats the steps after its last
    checkpoint) keeps the value written last.

  Raises:
    ValueError: if model_dir holds no TensorBoard event file.
  """
  files = _event_files(model_dir)
  if not files:
    raise ValueError(
        f"Expected TensorBoard event files (events.out.tfevents.*) in "
        f"model_dir {model_dir!r}, the directory a training run writes; "
        "found none.")
  by_tag: dict[str, dict[int, float]] = {}
  for path in files:
    for record in tf.data.TFRecordDataset(path):
      event = tf.compat.v1.Event.FromString(record.numpy())
      if not event.HasField("summary"):
        continue
      for value in event.summary.value:
        scalar = _scalar_value(value)
        if scalar is not None:
          by_tag.setdefault(value.tag, {})[int(event.step)] = scalar
  curves = {}
  for tag, points in by_tag.items():
    steps = np.array(sorted(points), np.int64)
    curves[tag] = (steps, np.array([points[s] for s in steps], np.float64))
  return curves


def _panel_lines(scalars: Mapping, lines: Sequence[tuple[str, str]],
                 hinge: bool) -> list[tuple[str, str]]:
  """(tag, label) of a panel's lines that the run has."""
  if hinge:
    return [(tag, tag[len(HINGE_PREFIX):])
            for tag in sorted(scalars) if tag.startswith(HINGE_PREFIX)]
  return [(tag, label) for tag, label in lines if tag in scalars]


def plot_learning_curves(scalars: Mapping[str, tuple[np.ndarray, np.ndarray]],
                         path: str, title: str = "") -> list[str]:
  """Writes the four-panel learning-curve figure as a PNG.

  Args:
    scalars: `read_scalars`' result.
    path: the PNG to write (local or gs://).
    title: the figure's title (e.g. the run's config).

  Returns:
    The tags plotted.

  Raises:
    ValueError: if none of the panels' tags is in `scalars` (a run without
      evaluations during training and without hinge summaries).
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top

  panels = [(name, unit, _panel_lines(scalars, lines, hinge=not lines))
            for name, unit, lines in PANELS]
  if not any(lines for _, _, lines in panels):
    wanted = [tag for _, _, lines in PANELS for tag, _ in lines]
    raise ValueError(
        f"Expected some of the scalars {wanted} or {HINGE_PREFIX}* in the "
        f"run's events (set train.eval_every for evaluations during "
        f"training); found only {sorted(scalars)[:20]}.")
  figure, axes = pyplot.subplots(2, 2, figsize=(12, 8.5))
  for axis, (name, unit, lines) in zip(axes.flat, panels):
    for tag, label in lines:
      steps, values = scalars[tag]
      many = len(steps) > 30
      axis.plot(steps, values, label=label, linewidth=1.2 if many else 1.6,
                marker=None if many else "o", markersize=4)
    axis.set_title(name, fontsize=10)
    axis.set_xlabel("step")
    axis.set_ylabel(unit)
    axis.grid(alpha=0.3)
    if lines:
      axis.legend(fontsize=7, ncol=2 if len(lines) > 4 else 1)
    else:
      axis.text(0.5, 0.5, "not in this run", ha="center", va="center",
                transform=axis.transAxes)
  if title:
    figure.suptitle(title, fontsize=11)
  figure.tight_layout()
  with tf.io.gfile.GFile(path, "wb") as output:
    figure.savefig(output, format="png", dpi=100)
  pyplot.close(figure)
  return sorted(tag for _, _, lines in panels for tag, _ in lines)
