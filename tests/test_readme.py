"""The README: its two commands, its size, its paths and its links to docs/."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
README_MAX_BYTES = 12_288
# Repository paths the README may name: files (with an extension) or
# directories (with a trailing slash) under these top-level folders. Not
# preceded by a path character, so that "gs://BUCKET/..." or "EXPORT/..."
# do not count.
_REPO_PATH = re.compile(
    r"(?<![\w./-])((?:gin|tools|bigbigan_tf|tests|docs)/"
    r"(?:[\w-]+/)*(?:[\w-]+\.(?:py|gin|md)\b)?)")


def _readme() -> str:
  return (ROOT / "README.md").read_text()


def _readme_commands():
  return re.findall(r"^```sh\n(.*?)\n```", _readme(), flags=re.M | re.S)


def test_readme_states_exactly_two_commands_and_ci_runs_the_test_one():
  commands = _readme_commands()
  assert len(commands) == 2, commands
  quickstart, tests = commands
  assert "bigbigan-train" in quickstart, quickstart
  assert "quickstart_mnist.gin" in quickstart, quickstart
  assert "pytest" in tests, tests
  ci_lines = (ROOT / ".ci" / "run").read_text().strip().splitlines()
  assert ci_lines[-1] == tests


def test_readme_is_at_most_12_kb():
  size = len((ROOT / "README.md").read_bytes())
  assert size <= README_MAX_BYTES, size


def test_paths_named_in_readme_exist():
  paths = set(_REPO_PATH.findall(_readme()))
  assert paths  # The pattern still matches what the README names.
  missing = sorted(path for path in paths if not (ROOT / path).exists())
  assert not missing, missing


def test_readme_links_every_docs_page():
  pages = sorted(path.name for path in (ROOT / "docs").glob("*.md"))
  assert pages
  links = set(re.findall(r"\]\((docs/[\w-]+\.md)(?:#[\w-]*)?\)", _readme()))
  unlinked = [page for page in pages if f"docs/{page}" not in links]
  assert not unlinked, unlinked
