"""Runs pytest on one test file and exits with pytest's status.

The `main` of every py_test in BUILD (`args` names the test file), so that
`bazel test //:test_layers` fails when a test of tests/test_layers.py fails:
the test files themselves define tests, not a `__main__` that runs them.

  python tests/pytest_runner.py tests/test_layers.py [pytest options]
"""

import sys

import pytest


def main(argv: list[str]) -> int:
  if len(argv) < 2:
    print(f"usage: python {argv[0]} TEST_FILE [pytest options]",
          file=sys.stderr)
    return 2
  return int(pytest.main(["-q", *argv[1:]]))


if __name__ == "__main__":
  sys.exit(main(sys.argv))
