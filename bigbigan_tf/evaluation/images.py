"""Image grids for samples, reconstructions and first-layer conv filters.

Images in this library are float arrays in [-1, 1] (NHWC). These helpers turn
batches of them into one uint8 RGB grid [H, W, 3] and write it as PNG:

* `image_grid`: a batch tiled row by row.
* `reconstruction_grid`: inputs x beside their reconstructions G(E(x)),
  either in alternating columns (x, G(E(x)), x, G(E(x)), ...) or in
  alternating rows.
* `conv_filter_grid`: a first-layer kernel [kh, kw, cin, cout] (cin 1 or 3),
  each filter min-max normalised on its own, as a diagnostic of the encoder.

Small images are magnified with nearest-neighbour upsampling (`zoom`;
`display_zoom` picks the factor that makes a cell at least 128 pixels, so a
32-pixel digit is readable). Grids have `padding` pixels of `padding_value` between cells and around the
border, so a grid of R x C cells of size h x w is
[R * (h + padding) + padding, C * (w + padding) + padding, 3].
"""

import math
from typing import Optional

import numpy as np
import tensorflow as tf

from bigbigan_tf.networks import common

LAYOUTS = ("columns", "rows")
# Smallest side of a displayed cell, in pixels (`display_zoom`).
MIN_DISPLAY_SIZE = 128


def display_zoom(size: int, min_size: int = MIN_DISPLAY_SIZE) -> int:
  """The integer magnification that shows a `size`-pixel image at least
  `min_size` pixels wide (1 for images that already are)."""
  if size < 1:
    raise ValueError(f"size must be >= 1; received {size}.")
  return max(1, math.ceil(min_size / size))


def _magnify(images: np.ndarray, zoom: int) -> np.ndarray:
  """Nearest-neighbour upsampling of [N, h, w, C] by an integer factor."""
  common.check_int(zoom, "zoom")
  if zoom == 1:
    return images
  return np.asarray(common.upsample(images, int(zoom)))


def to_uint8(images: np.ndarray) -> np.ndarray:
  """Maps values in [-1, 1] to uint8 [0, 255] (-1 -> 0, 1 -> 255), clipping."""
  images = np.asarray(images, np.float64)
  return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def image_grid(images: np.ndarray,
               num_columns: Optional[int] = None,
               padding: int = 2,
               padding_value: float = 1.0,
               zoom: int = 1) -> np.ndarray:
  """Tiles a batch of images in [-1, 1] into one uint8 RGB grid.

  Args:
    images: [N, h, w, C] with C in {1, 3}, values in [-1, 1]; grayscale is
      repeated to RGB. Cells after the last image are filled with
      `padding_value`.
    num_columns: images per row; defaults to ceil(sqrt(N)).
    padding: pixels between cells and around the border.
    padding_value: value of the padding, in [-1, 1] (1 is white).
    zoom: integer magnification of every image (nearest neighbour), applied
      before tiling; h and w below are the magnified sizes.

  Returns:
    uint8 [rows * (h + padding) + padding, columns * (w + padding) + padding,
    3], rows = ceil(N / columns).

  Raises:
    ValueError: if `images` has the wrong rank or channel count, is empty, or
      `num_columns` / `padding` are invalid.
  """
  images = np.asarray(images, np.float32)
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(
        "images must be [N, h, w, C] with C in {1, 3}; received shape "
        f"{images.shape}.")
  num_images, height, width, _ = images.shape
  if num_images == 0:
    raise ValueError("images is empty; expected at least one image.")
  if num_columns is None:
    num_columns = int(math.ceil(math.sqrt(num_images)))
  if num_columns < 1 or padding < 0:
    raise ValueError(
        "Expected num_columns >= 1 and padding >= 0; received "
        f"{num_columns} and {padding}.")
  images = _magnify(images, zoom)
  height, width = height * zoom, width * zoom
  if images.shape[-1] == 1:
    images = np.repeat(images, 3, axis=-1)
  num_rows = int(math.ceil(num_images / num_columns))
  grid = np.full((num_rows * (height + padding) + padding,
                  num_columns * (width + padding) + padding, 3),
                 padding_value, np.float32)
  for index in range(num_images):
    row, column = divmod(index, num_columns)
    top = padding + row * (height + padding)
    left = padding + column * (width + padding)
    grid[top:top + height, left:left + width] = images[index]
  return to_uint8(grid)


def reconstruction_grid(originals: np.ndarray,
                        reconstructions: np.ndarray,
                        pairs_per_row: Optional[int] = None,
                        layout: str = "columns",
                        padding: int = 2,
                        padding_value: float = 1.0,
                        zoom: int = 1) -> np.ndarray:
  """Shows inputs x next to their reconstructions G(E(x)).

  Args:
    originals: [N, h, w, C] inputs in [-1, 1].
    reconstructions: reconstructions of `originals`, same shape.
    pairs_per_row: (x, G(E(x))) pairs per row of the grid; defaults to
      ceil(sqrt(N)).
    layout: "columns": each row reads x_0, G(E(x_0)), x_1, G(E(x_1)), ...;
      "rows": a row of inputs followed by the row of their reconstructions.
    padding: pixels between cells and around the border.
    padding_value: value of the padding, in [-1, 1].
    zoom: integer magnification of every image (nearest neighbour).

  Returns:
    uint8 [H, W, 3] grid.

  Raises:
    ValueError: if the shapes differ or `layout` is unknown.
  """
  originals = np.asarray(originals, np.float32)
  reconstructions = np.asarray(reconstructions, np.float32)
  if originals.shape != reconstructions.shape:
    raise ValueError(
        "originals and reconstructions must have the same shape; received "
        f"{originals.shape} and {reconstructions.shape}.")
  if layout not in LAYOUTS:
    raise ValueError(f"layout must be one of {LAYOUTS}; received {layout!r}.")
  if originals.ndim != 4:
    raise ValueError(
        f"images must be [N, h, w, C]; received shape {originals.shape}.")
  num_images = originals.shape[0]
  if pairs_per_row is None:
    pairs_per_row = int(math.ceil(math.sqrt(num_images)))
  if pairs_per_row < 1:
    raise ValueError(f"pairs_per_row must be >= 1; received {pairs_per_row}.")
  num_rows = int(math.ceil(num_images / pairs_per_row))
  # Pad to whole rows with blank cells so both layouts tile evenly.
  num_blank = num_rows * pairs_per_row - num_images
  blank = np.full((num_blank,) + originals.shape[1:], padding_value,
                  np.float32)
  originals = np.concatenate([originals, blank])
  reconstructions = np.concatenate([reconstructions, blank])
  cell_shape = originals.shape[1:]
  if layout == "columns":
    cells = np.stack([originals, reconstructions], axis=1)
    cells = cells.reshape((-1,) + cell_shape)
    num_columns = 2 * pairs_per_row
  else:
    cells = np.stack([
        originals.reshape((num_rows, pairs_per_row) + cell_shape),
        reconstructions.reshape((num_rows, pairs_per_row) + cell_shape)
    ], axis=1).reshape((-1,) + cell_shape)
    num_columns = pairs_per_row
  return image_grid(cells, num_columns=num_columns, padding=padding,
                    padding_value=padding_value, zoom=zoom)


def conv_filter_grid(kernel: np.ndarray,
                     num_columns: Optional[int] = None,
                     zoom: Optional[int] = None,
                     padding: int = 1,
                     padding_value: float = 1.0,
                     grayscale: bool = False) -> np.ndarray:
  """Visualises a first-layer convolution kernel as a grid of filters.

  Each output filter [kh, kw, cin] is min-max normalised on its own to
  [-1, 1] (a constant filter becomes mid-grey), then magnified by `zoom`
  with nearest-neighbour upsampling.

  With `grayscale` (data whose three channels are equal, e.g. MNIST), each
  filter is shown as the sum over its input channels: what it computes on
  an image with r = g = b.

  Args:
    kernel: [kh, kw, cin, cout] weights with cin in {1, 3}.
    num_columns: filters per row; defaults to ceil(sqrt(cout)).
    zoom: integer magnification of each filter; default: cells of at least
      48 pixels.
    padding: pixels between filters and around the border.
    padding_value: value of the padding, in [-1, 1].
    grayscale: show sum-over-channels filters in gray (see above).

  Returns:
    uint8 [H, W, 3] grid with `cout` cells of size [kh * zoom, kw * zoom].

  Raises:
    ValueError: if `kernel` is not 4-D with 1 or 3 input channels, or zoom
      is below 1.
  """
  kernel = np.asarray(kernel, np.float64)
  if kernel.ndim != 4 or kernel.shape[2] not in (1, 3):
    raise ValueError(
        "kernel must be [kh, kw, cin, cout] with cin in {1, 3}; received "
        f"shape {kernel.shape}.")
  if zoom is None:
    zoom = display_zoom(max(kernel.shape[:2]), min_size=48)
  if zoom < 1:
    raise ValueError(f"zoom must be >= 1; received {zoom}.")
  if grayscale:
    kernel = kernel.sum(axis=2, keepdims=True)
  filters = np.transpose(kernel, (3, 0, 1, 2))  # [cout, kh, kw, cin]
  low = filters.min(axis=(1, 2, 3), keepdims=True)
  high = filters.max(axis=(1, 2, 3), keepdims=True)
  span = high - low
  safe_span = np.where(span > 0, span, 1.0)
  normalized = np.where(span > 0, 2.0 * (filters - low) / safe_span - 1.0, 0.0)
  return image_grid(normalized, num_columns=num_columns, padding=padding,
                    padding_value=padding_value, zoom=zoom)


def encode_png(image: np.ndarray) -> bytes:
  """PNG bytes of a uint8 image [H, W, C] (C in {1, 3, 4}).

  Raises:
    ValueError: if `image` is not a 3-D uint8 array.
  """
  image = np.asarray(image)
  if image.dtype != np.uint8 or image.ndim != 3:
    raise ValueError(
        "Expected a uint8 image [H, W, C]; received dtype "
        f"{image.dtype} and shape {image.shape}.")
  return tf.io.encode_png(image).numpy()


def write_png(path: str, image: np.ndarray) -> None:
  """Writes a uint8 image [H, W, C] as PNG (local or tf.io.gfile path)."""
  data = encode_png(image)
  parent = path.rsplit("/", 1)[0] if "/" in path else ""
  if parent:
    tf.io.gfile.makedirs(parent)
  tf.io.write_file(path, data)
