"""Tests of the image-grid and PNG helpers."""

import numpy as np
import pytest
import tensorflow as tf

from bigbigan_tf.evaluation import images


def test_to_uint8_maps_range_endpoints_and_clips():
  values = np.array([-1.0, 0.0, 1.0, -3.0, 2.0])
  np.testing.assert_array_equal(images.to_uint8(values), [0, 128, 255, 0, 255])
  assert images.to_uint8(values).dtype == np.uint8


def test_image_grid_shape_and_placement():
  batch = np.full((5, 4, 6, 3), -1.0, np.float32)
  batch[3] = 1.0  # Fourth image white: row 1, column 0 with 3 columns.
  grid = images.image_grid(batch, num_columns=3, padding=1, padding_value=0.0)
  assert grid.shape == (2 * 5 + 1, 3 * 7 + 1, 3)
  assert grid.dtype == np.uint8
  np.testing.assert_array_equal(grid[6:10, 1:7], 255)  # the white image
  np.testing.assert_array_equal(grid[1:5, 1:7], 0)  # the first image
  assert np.all(grid[0] == 128)  # padding value 0 -> 128
  np.testing.assert_array_equal(grid[6:10, 15:21], 128)  # empty sixth cell


def test_image_grid_without_padding_is_exact_tiling_and_gray_to_rgb():
  gray = np.linspace(-1, 1, 4 * 2 * 2).reshape(4, 2, 2, 1)
  grid = images.image_grid(gray, padding=0)
  assert grid.shape == (4, 4, 3)
  np.testing.assert_array_equal(grid[:2, 2:, 0],
                                images.to_uint8(gray[1, ..., 0]))
  np.testing.assert_array_equal(grid[..., 0], grid[..., 2])


def test_image_grid_rejects_bad_shapes():
  with pytest.raises(ValueError, match=r"received shape \(2, 4, 4, 2\)"):
    images.image_grid(np.zeros((2, 4, 4, 2)))


def test_reconstruction_grid_alternates_columns():
  originals = np.full((4, 2, 2, 3), -1.0)
  reconstructions = np.full((4, 2, 2, 3), 1.0)
  grid = images.reconstruction_grid(originals, reconstructions,
                                    pairs_per_row=2, padding=0)
  assert grid.shape == (4, 8, 3)
  column_values = grid[0, ::2, 0]  # one pixel per cell
  np.testing.assert_array_equal(column_values, [0, 255, 0, 255])


def test_reconstruction_grid_alternates_rows():
  originals = np.full((3, 2, 2, 3), -1.0)
  reconstructions = np.full((3, 2, 2, 3), 1.0)
  grid = images.reconstruction_grid(originals, reconstructions,
                                    pairs_per_row=2, layout="rows",
                                    padding=0, padding_value=0.0)
  assert grid.shape == (8, 4, 3)
  np.testing.assert_array_equal(grid[::2, 0, 0], [0, 255, 0, 255])
  # The fourth pair does not exist: blank cells at the end of rows 2 and 3.
  np.testing.assert_array_equal(grid[4:, 2:], 128)


def test_reconstruction_grid_rejects_mismatched_shapes():
  with pytest.raises(ValueError, match="same shape"):
    images.reconstruction_grid(np.zeros((2, 4, 4, 3)), np.zeros((3, 4, 4, 3)))


def test_conv_filter_grid_normalises_each_filter():
  rng = np.random.default_rng(0)
  kernel = rng.normal(size=(3, 3, 3, 4))
  kernel[..., 1] *= 100.0  # a large filter does not wash out the others
  kernel[..., 3] = 0.5  # a constant filter becomes mid-grey
  grid = images.conv_filter_grid(kernel, num_columns=4, zoom=2, padding=0)
  assert grid.shape == (6, 24, 3)
  for index in range(3):
    cell = grid[:, index * 6:(index + 1) * 6]
    assert cell.min() == 0 and cell.max() == 255
  np.testing.assert_array_equal(grid[:, 18:], 128)
  # Nearest-neighbour zoom: 2x2 blocks are constant.
  np.testing.assert_array_equal(grid[0, 0], grid[1, 1])


def test_conv_filter_grid_rejects_other_input_channels():
  with pytest.raises(ValueError, match="cin in"):
    images.conv_filter_grid(np.zeros((3, 3, 4, 8)))


def test_png_round_trip(tmp_path):
  batch = np.random.default_rng(1).uniform(-1, 1, size=(6, 8, 8, 3))
  grid = images.image_grid(batch)
  path = str(tmp_path / "out" / "grid.png")
  images.write_png(path, grid)
  decoded = tf.io.decode_png(tf.io.read_file(path)).numpy()
  np.testing.assert_array_equal(decoded, grid)
  assert images.encode_png(grid)[:8] == b"\x89PNG\r\n\x1a\n"


def test_encode_png_rejects_float_images():
  with pytest.raises(ValueError, match="uint8"):
    images.encode_png(np.zeros((4, 4, 3), np.float32))


def test_display_zoom_makes_small_cells_at_least_128_pixels():
  assert images.display_zoom(32) == 4
  assert images.display_zoom(28) == 5
  assert images.display_zoom(128) == 1
  assert images.display_zoom(256) == 1
  assert images.display_zoom(7, min_size=48) == 7
  with pytest.raises(ValueError, match="size must be >= 1"):
    images.display_zoom(0)


def test_zoomed_grid_is_nearest_neighbour_and_keeps_padding():
  batch = np.random.RandomState(0).uniform(-1, 1, (4, 3, 3, 1))
  grid = images.image_grid(batch, num_columns=2, padding=1, zoom=4)
  assert grid.shape == (2 * (12 + 1) + 1, 2 * (12 + 1) + 1, 3)
  first = grid[1:13, 1:13, 0]
  expected = np.repeat(np.repeat(images.to_uint8(batch[0, ..., 0]), 4, 0), 4, 1)
  np.testing.assert_array_equal(first, expected)
  recon = images.reconstruction_grid(batch, batch, pairs_per_row=2,
                                     padding=0, zoom=2)
  assert recon.shape == (2 * 6, 4 * 6, 3)
  with pytest.raises(ValueError, match="zoom must be an int >= 1"):
    images.image_grid(batch, zoom=0)


def test_grayscale_filters_are_the_sum_over_input_channels():
  kernel = np.random.RandomState(1).normal(size=(3, 3, 3, 4))
  gray = images.conv_filter_grid(kernel, num_columns=4, zoom=1, padding=0,
                                 grayscale=True)
  # Every pixel is gray (r = g = b), and equals the summed filter's grid.
  np.testing.assert_array_equal(gray[..., 0], gray[..., 1])
  np.testing.assert_array_equal(gray[..., 0], gray[..., 2])
  summed = images.conv_filter_grid(kernel.sum(axis=2, keepdims=True),
                                   num_columns=4, zoom=1, padding=0)
  np.testing.assert_array_equal(gray, summed)
  colour = images.conv_filter_grid(kernel, num_columns=4, zoom=1, padding=0)
  assert not np.array_equal(colour[..., 0], colour[..., 1])
  # Default magnification: cells of at least 48 pixels.
  assert images.conv_filter_grid(kernel, num_columns=4, padding=0).shape == (
      48, 4 * 48, 3)
