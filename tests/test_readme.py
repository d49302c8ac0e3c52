"""The README cannot drift: its Python examples run, its atlas is the suites', its Quickstart is CI's."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_the_readme_has_examples() -> None:
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=lambda i: f"block-{i}")
def test_every_python_example_runs(index: int, tmp_path: Path) -> None:
    block = BLOCKS[index]
    if "@pytest.mark.stress" in block:  # a test file: run it with pytest
        (tmp_path / "test_example.py").write_text(block)
        argv = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--stress-profile",
            "ci",
            "test_example.py",
        ]
    else:
        (tmp_path / "example.py").write_text(block)
        argv = [sys.executable, "example.py"]
    done = subprocess.run(
        argv, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_the_atlas_matrix_is_the_suites() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "suites" / "_atlas.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, "README.md's atlas is out of date: run python suites/_atlas.py"


def test_the_quickstart_commands_are_what_ci_runs() -> None:
    quickstart = re.search(r"## Quickstart\n\n```bash\n(.*?)```", README, flags=re.S)
    assert quickstart is not None
    commands = quickstart.group(1).strip().splitlines()
    assert len(commands) == 2
    ci = (ROOT / ".ci" / "run").read_text()
    for command in commands:
        assert command in ci, command
