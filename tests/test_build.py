"""Tests that BUILD lists every module, test and tool, and that Bazel runs it.

The first test reads BUILD without Bazel: BUILD is Starlark, whose syntax is
Python's, so it is executed with stand-ins for the rules that record their
arguments. The Bazel tests run `bazel query 'deps(//...)'` and `bazel test` on
a few light targets with Debian's offline bazel-bootstrap, which
.ci/install_bazel.sh installs. Where `bazel` is not installed they are skipped,
unless the environment variable BIGBIGAN_REQUIRE_BAZEL is 1 (.ci/run sets it):
then a missing `bazel` fails them.

`python tests/test_build.py --update` rewrites the file lists at the top of
BUILD from what is on disk.
"""

import ast
import dataclasses
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
BUILD_FILE = REPO_ROOT / "BUILD"
INSTALL_HINT = "run `bash .ci/install_bazel.sh` (Debian's bazel-bootstrap)"
LIBRARY_NAME = "bigbigan_tf"
# Bazel starts in a few seconds; the margin is for a busy 2-core machine.
QUERY_TIMEOUT_S = 120
_RULE_KINDS = ("py_library", "py_test", "py_binary")
# Every py_test runs pytest on its file through this runner.
PYTEST_RUNNER = "tests/pytest_runner.py"
TOOL_PACKAGE_INIT = "tools/__init__.py"
REQUIRE_BAZEL_ENV = "BIGBIGAN_REQUIRE_BAZEL"
# Files outside the library that the tests read: every py_test lists them as
# data, so that they are in its runfiles under `bazel test`.
TOP_LEVEL_DATA = (".ci/run", "README.md")
# Light py_tests that `bazel test` runs here: the README checks (which read
# .ci/run, docs/ and the tools through runfiles) and a data module's tests.
BAZEL_TEST_TARGETS = ("//:test_readme", "//:test_data_preparation")
BAZEL_TEST_TIMEOUT_S = 600


@dataclasses.dataclass(frozen=True)
class Rule:
  """One rule call in BUILD, with the attributes these tests look at."""
  kind: str
  name: str
  srcs: tuple[str, ...]
  data: tuple[str, ...]
  deps: tuple[str, ...]
  main: str | None
  args: tuple[str, ...] = ()


def _glob_forbidden(*args, **kwargs):
  del args, kwargs  # Unused.
  raise AssertionError(
      "BUILD must list files explicitly, not with glob(): "
      "tests/test_build.py relies on it to catch unlisted files")


def _read_build_rules() -> list[Rule]:
  """Evaluates BUILD with recording stand-ins for the rules it calls.

  Returns:
    The py_library, py_test and py_binary calls, in order.
  """
  source = BUILD_FILE.read_text()
  tree = ast.parse(source, filename=str(BUILD_FILE))
  rules = []

  def recorder(kind):
    def record(name, srcs=(), data=(), deps=(), main=None, args=(),
               **unused_attrs):
      del unused_attrs  # Sizes, versions, visibility: not checked here.
      rules.append(Rule(kind, name, tuple(srcs), tuple(data), tuple(deps),
                        main, tuple(args)))
    return record

  namespace = {kind: recorder(kind) for kind in _RULE_KINDS}
  namespace["glob"] = _glob_forbidden
  # Starlark has few builtins; these are the ones a BUILD file may need.
  namespace["__builtins__"] = {"len": len, "sorted": sorted, "str": str}
  code = compile(tree, str(BUILD_FILE), "exec")
  exec(code, namespace)  # pylint: disable=exec-used
  return rules


def _files(pattern: str) -> set[str]:
  """Repo-relative paths matching `pattern`, minus caches and hidden folders."""
  return {
      path.relative_to(REPO_ROOT).as_posix()
      for path in REPO_ROOT.glob(pattern)
      if path.is_file() and not any(
          part.startswith(".") or part == "__pycache__"
          for part in path.relative_to(REPO_ROOT).parts)
  }


def _on_disk() -> dict[str, set[str]]:
  """The files BUILD must list, keyed by the name of their list in BUILD."""
  return {
      "LIBRARY_SRCS": _files("bigbigan_tf/**/*.py"),
      "GIN_FILES": _files("gin/**/*"),
      "TEST_SRCS": _files("tests/test_*.py"),
      "TEST_SUPPORT_SRCS": _files("tests/*.py") - _files("tests/test_*.py"),
      "TOOL_SRCS": _files("tools/*.py") - {TOOL_PACKAGE_INIT},
      "TOOL_SUPPORT_SRCS": {TOOL_PACKAGE_INIT},
      "DOC_FILES": _files("docs/**/*"),
  }


def _target_name(path: str) -> str:
  return pathlib.PurePosixPath(path).stem


def _unlisted(paths: set[str], listed: set[str], where: str) -> list[str]:
  missing = sorted(paths - listed)
  if not missing:
    return []
  return [f"not listed in BUILD, belongs in {where}: " + ", ".join(missing)]


def test_build_lists_every_module_test_and_tool():
  rules = _read_build_rules()
  disk = _on_disk()
  libraries = [rule for rule in rules if rule.kind == "py_library"]
  tests = [rule for rule in rules if rule.kind == "py_test"]
  binaries = [rule for rule in rules if rule.kind == "py_binary"]
  problems = []

  if [rule.name for rule in libraries] != [LIBRARY_NAME]:
    problems.append(f"BUILD must have exactly one py_library, {LIBRARY_NAME!r};"
                    f" it has {[rule.name for rule in libraries]}")
  library_srcs = {src for rule in libraries for src in rule.srcs}
  library_data = {item for rule in libraries for item in rule.data}
  problems += _unlisted(
      disk["LIBRARY_SRCS"], library_srcs,
      f"LIBRARY_SRCS (srcs of py_library {LIBRARY_NAME!r})")
  problems += _unlisted(
      disk["GIN_FILES"], library_data,
      f"GIN_FILES (data of py_library {LIBRARY_NAME!r})")

  tested_files = {rule.srcs[0] for rule in tests if rule.srcs}
  problems += _unlisted(disk["TEST_SRCS"], tested_files,
                        "TEST_SRCS (one py_test per file)")
  for rule in tests:
    # The test file alone would define tests and run none of them.
    if rule.main != PYTEST_RUNNER or rule.args != rule.srcs[:1]:
      problems.append(
          f"py_test {rule.name!r} must run {PYTEST_RUNNER} on its file "
          f"(main = {PYTEST_RUNNER!r}, args = [{rule.srcs[0]!r}]); it has "
          f"main = {rule.main!r}, args = {list(rule.args)}")
  if tests:
    in_every_test = set.intersection(*(set(rule.srcs) for rule in tests))
    problems += _unlisted(disk["TEST_SUPPORT_SRCS"], in_every_test,
                          "TEST_SUPPORT_SRCS (srcs of every py_test)")

  tool_mains = {rule.main or rule.srcs[0] for rule in binaries if rule.srcs}
  problems += _unlisted(disk["TOOL_SRCS"], tool_mains,
                        "TOOL_SRCS (one py_binary per file)")
  if binaries:
    in_every_tool = set.intersection(*(set(rule.srcs) for rule in binaries))
    problems += _unlisted(disk["TOOL_SUPPORT_SRCS"], in_every_tool,
                          "TOOL_SUPPORT_SRCS (srcs of every py_binary)")

  test_data = (disk["DOC_FILES"] | set(TOP_LEVEL_DATA) | disk["TOOL_SRCS"]
               | disk["TOOL_SUPPORT_SRCS"])
  for rule in tests:
    missing_data = sorted(test_data - set(rule.data))
    if missing_data:
      problems.append(
          f"py_test {rule.name!r} misses data it reads (DOC_FILES, "
          f"TOP_LEVEL_DATA, TOOL_SRCS, TOOL_SUPPORT_SRCS): "
          + ", ".join(missing_data))

  for rule in tests + binaries:
    if f":{LIBRARY_NAME}" not in rule.deps:
      problems.append(f"{rule.kind} {rule.name!r} must depend on "
                      f"':{LIBRARY_NAME}'; its deps are {list(rule.deps)}")

  for rule in rules:
    listed = set(rule.srcs) | set(rule.data) | ({rule.main} - {None})
    gone = sorted(path for path in listed if not (REPO_ROOT / path).is_file())
    if gone:
      problems.append(f"{rule.kind} {rule.name!r} lists files that do not "
                      f"exist: {', '.join(gone)}")

  names = [rule.name for rule in rules]
  clashes = sorted({name for name in names if names.count(name) > 1})
  if clashes:
    problems.append(f"rule names used twice in BUILD: {', '.join(clashes)}")

  assert not problems, (
      "BUILD is out of date (`python tests/test_build.py --update` rewrites "
      "its file lists):\n  " + "\n  ".join(problems))


def test_pytest_runner_fails_on_a_failing_test(tmp_path):
  """What every py_test runs: a failing test must make it exit non-zero."""
  (tmp_path / "test_failing.py").write_text(
      "def test_passes():\n  assert True\n\n"
      "def test_fails():\n  assert 1 == 2\n")
  (tmp_path / "test_passing.py").write_text(
      "def test_passes():\n  assert True\n")
  runner = str(REPO_ROOT / PYTEST_RUNNER)
  run = lambda name: subprocess.run(
      [sys.executable, runner, str(tmp_path / name), "-p", "no:cacheprovider"],
      cwd=tmp_path, capture_output=True, text=True, check=False)
  failing = run("test_failing.py")
  assert failing.returncode == 1, failing.stdout + failing.stderr
  assert "1 failed, 1 passed" in failing.stdout
  passing = run("test_passing.py")
  assert passing.returncode == 0, passing.stdout + passing.stderr
  assert subprocess.run([sys.executable, runner], capture_output=True,
                        check=False).returncode == 2


def _bazel() -> str:
  """The `bazel` binary; skips the test where it is absent and not required."""
  bazel = shutil.which("bazel")
  if bazel:
    return bazel
  if os.environ.get(REQUIRE_BAZEL_ENV) == "1":
    raise AssertionError(f"bazel is not installed and {REQUIRE_BAZEL_ENV}=1: "
                         f"{INSTALL_HINT}, then rerun the tests")
  pytest.skip(f"bazel is not installed ({INSTALL_HINT} to run this test; "
              f".ci/run sets {REQUIRE_BAZEL_ENV}=1, which makes it required)")


@pytest.fixture(scope="module")
def bazel_output_base(tmp_path_factory):
  """One output base for the module's Bazel commands: externals load once."""
  return tmp_path_factory.mktemp("bazel_output_base")


def _run_bazel(bazel: str, output_base: pathlib.Path, args: list[str],
               timeout_s: float):
  """Runs one Bazel command in its own process group, killed on timeout.

  Returns:
    The command, its exit status, stdout and stderr.
  """
  command = [
      bazel,
      # One process that exits with the command, no server left behind; an
      # output base of its own, so no lock is shared with other checkouts.
      "--batch",
      f"--output_base={output_base}",
      *args,
  ]
  process = subprocess.Popen(
      command, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True, start_new_session=True)
  try:
    stdout, stderr = process.communicate(timeout=timeout_s)
  except subprocess.TimeoutExpired:
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate()
    raise AssertionError(f"`{' '.join(command)}` took more than "
                         f"{timeout_s} s") from None
  return command, process.returncode, stdout, stderr


def _bazel_failure(command, returncode, output: str) -> str:
  return (f"`{' '.join(command)}` exited with {returncode}. If the errors name "
          f"rules_cc, rules_java or a download, {INSTALL_HINT}. Last lines:\n"
          + "\n".join(output.splitlines()[-25:]))


def _bazel_links(entries) -> list[str]:
  return sorted(entry for entry in entries if entry.startswith("bazel-"))


def test_bazel_query_loads_every_target(bazel_output_base):
  bazel = _bazel()
  entries_before = set(os.listdir(REPO_ROOT))

  command, returncode, stdout, stderr = _run_bazel(
      bazel, bazel_output_base,
      ["query", "--noshow_progress", "deps(//...)"], QUERY_TIMEOUT_S)

  assert returncode == 0, _bazel_failure(command, returncode, stderr)
  labels = set(stdout.split())
  disk = _on_disk()
  expected = {f"//:{LIBRARY_NAME}"}
  expected |= {f"//:{_target_name(path)}"
               for path in disk["TEST_SRCS"] | disk["TOOL_SRCS"]}
  expected |= {f"//:{path}"
               for path in disk["LIBRARY_SRCS"] | disk["TEST_SRCS"]}
  missing = sorted(expected - labels)
  assert not missing, (
      "`bazel query 'deps(//...)'` misses these targets and files (list them "
      "in BUILD): " + ", ".join(missing))
  left_behind = _bazel_links(set(os.listdir(REPO_ROOT)) - entries_before)
  assert not left_behind, f"bazel query left files in the repo: {left_behind}"


def test_bazel_test_runs_light_targets(bazel_output_base):
  """`bazel test` builds the py_tests' runfiles and runs pytest in them."""
  bazel = _bazel()
  entries_before = set(os.listdir(REPO_ROOT))

  command, returncode, stdout, stderr = _run_bazel(
      bazel, bazel_output_base,
      ["test", "--noshow_progress", "--test_output=errors",
       # No bazel-* convenience links in the checkout.
       "--symlink_prefix=/",
       # The tests import TensorFlow from the Python environment on PATH.
       "--test_env=PATH", "--action_env=PATH",
       *BAZEL_TEST_TARGETS], BAZEL_TEST_TIMEOUT_S)

  output = stdout + stderr
  assert returncode == 0, _bazel_failure(command, returncode, output)
  for target in BAZEL_TEST_TARGETS:
    assert re.search(rf"^{re.escape(target)}\s+PASSED", output, flags=re.M), (
        f"{target} did not pass:\n" + "\n".join(output.splitlines()[-25:]))
  left_behind = _bazel_links(set(os.listdir(REPO_ROOT)) - entries_before)
  assert not left_behind, f"bazel test left files in the repo: {left_behind}"


def update_build_lists() -> None:
  """Rewrites the `NAME = [...]` file lists in BUILD from the files on disk."""
  text = BUILD_FILE.read_text()
  for list_name, paths in _on_disk().items():
    items = "".join(f'\n    "{path}",' for path in sorted(paths))
    new_list = f"{list_name} = [{items}\n]" if items else f"{list_name} = []"
    text, count = re.subn(rf"^{list_name} = \[[^\]]*\]",
                          lambda unused_match: new_list, text, flags=re.M)
    if count != 1:
      raise SystemExit(f"BUILD has {count} `{list_name} = [...]` lists, "
                       "expected one")
  BUILD_FILE.write_text(text)


if __name__ == "__main__":
  if sys.argv[1:] != ["--update"]:
    raise SystemExit(f"usage: python {sys.argv[0]} --update")
  update_build_lists()
