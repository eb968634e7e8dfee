"""The reconstruction judge: checked on held-out digits, cached, strict about
its input size."""

import numpy as np
import pytest

from bigbigan_tf import data
from bigbigan_tf.evaluation import judge as judge_lib


@pytest.mark.slow
def test_judge_reaches_97_percent_on_held_out_digits_and_is_cached(
    data_dir, tmp_path):
  cache = str(tmp_path / "judges")
  judge = judge_lib.cached_judge("mnist5k", 32, data_dir=data_dir,
                                 cache_dir=cache)
  test_x, test_y = data.load_arrays("mnist5k", "test", 32, data_dir=data_dir)
  accuracy = float(np.mean(judge.classify(test_x) == test_y))
  assert accuracy == pytest.approx(judge.test_top1)
  assert accuracy >= 0.97, accuracy
  # A second call loads the cached weights: same predictions, no training.
  cached = judge_lib.cached_judge("mnist5k", 32, data_dir=data_dir,
                                  cache_dir=cache)
  assert cached.test_top1 == judge.test_top1
  np.testing.assert_array_equal(cached.classify(test_x[:100]),
                                judge.classify(test_x[:100]))
  # Agreement: identical images always agree; shuffled digits mostly not.
  assert judge.agreement(test_x[:200], test_x[:200]) == 1.0
  assert judge.agreement(test_x[:200], test_x[200:400]) < 0.3
  with pytest.raises(ValueError, match=r"\[N, 32, 32, 3\].*\(4, 28, 28, 3\)"):
    judge.classify(np.zeros((4, 28, 28, 3), np.float32))


def test_judge_rejects_mismatched_inputs():
  with pytest.raises(ValueError, match="non-empty"):
    judge_lib.train_judge(np.zeros((4, 8, 8, 3)), np.zeros(3),
                          np.zeros((2, 8, 8, 3)), np.zeros(2))
