"""The package metadata: what the base install and each extra pull in.

setup.py is run with `setuptools.setup` replaced by a recorder, so the test
reads the requirements setup.py declares, whatever is installed here.
"""

import ast
import os
import pathlib
import re
import sys
from unittest import mock

import setuptools

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Distributions that are, or bring, the `tensorflow` package: on a TPU VM,
# any of them would replace its tensorflow-tpu.
TENSORFLOW_DISTRIBUTIONS = {"tensorflow", "tensorflow-cpu", "tensorflow-tpu",
                            "tensorflow-hub", "tf-keras"}
# Import names whose distribution has another name.
_DISTRIBUTION_OF = {"absl": "absl-py", "gin": "gin-config", "PIL": "pillow",
                    "sklearn": "scikit-learn", "tensorflow_datasets":
                    "tensorflow-datasets", "tensorflow_hub": "tensorflow-hub"}


def _setup_arguments() -> dict:
  with mock.patch.object(setuptools, "setup") as setup:
    namespace = {"__file__": str(ROOT / "setup.py"), "__name__": "setup"}
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
      exec(compile((ROOT / "setup.py").read_text(), "setup.py", "exec"),  # pylint: disable=exec-used
           namespace)
    finally:
      os.chdir(cwd)
  return setup.call_args.kwargs


def _names(requirements) -> set[str]:
  return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower()
          for r in requirements}


def test_base_install_and_tpu_extra_leave_a_tpu_vms_tensorflow_alone():
  arguments = _setup_arguments()
  base = _names(arguments["install_requires"])
  tpu = _names(arguments["extras_require"]["tpu"])
  assert not (base | tpu) & TENSORFLOW_DISTRIBUTIONS, (base | tpu) & (
      TENSORFLOW_DISTRIBUTIONS)
  assert "cloud-tpu-client" in tpu  # What --tpu=NAME needs.


def test_cpu_and_test_extras_bring_tensorflow_and_hub():
  extras = _setup_arguments()["extras_require"]
  assert "tensorflow>=2.20" in extras["cpu"]
  assert _names(extras["cpu"]) == {"tensorflow", "tensorflow-hub"}
  assert set(extras["cpu"]) <= set(extras["test"])
  assert {"pytest", "pytest-xdist", "tf-keras"} <= _names(extras["test"])


def _top_level_imports(path: pathlib.Path) -> set[str]:
  tree = ast.parse(path.read_text(), filename=str(path))
  names = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names |= {alias.name.split(".")[0] for alias in node.names}
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      names.add(node.module.split(".")[0])
  return names


def test_every_third_party_import_is_declared():
  arguments = _setup_arguments()
  declared = _names(arguments["install_requires"]) | _names(
      arguments["extras_require"]["cpu"])
  imported = set()
  for folder in ("bigbigan_tf", "tools"):
    for path in (ROOT / folder).rglob("*.py"):
      imported |= _top_level_imports(path)
  third_party = {name for name in imported
                 if name not in sys.stdlib_module_names
                 and name not in {"bigbigan_tf", "tools", "__future__"}}
  undeclared = sorted(
      name for name in third_party
      if _DISTRIBUTION_OF.get(name, name).lower().replace("_", "-")
      not in declared)
  assert not undeclared, undeclared
