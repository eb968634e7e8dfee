"""The README's commands are the ones CI and the tests run."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _readme_commands():
  text = (ROOT / "README.md").read_text()
  return re.findall(r"^```sh\n(.*?)\n```", text, flags=re.M | re.S)


def test_readme_states_exactly_two_commands_and_ci_runs_the_test_one():
  commands = _readme_commands()
  assert len(commands) == 2, commands
  quickstart, tests = commands
  assert "tools/train.py" in quickstart and "gin/quickstart_mnist.gin" in quickstart
  assert "pytest" in tests
  ci_lines = (ROOT / ".ci" / "run").read_text().strip().splitlines()
  assert ci_lines[-1] == tests


def test_files_named_in_readme_exist():
  text = (ROOT / "README.md").read_text()
  for path in set(re.findall(r"\b((?:gin|tools|bigbigan_tf|tests)/[\w/]+\.(?:py|gin))", text)):
    assert (ROOT / path).exists(), path
