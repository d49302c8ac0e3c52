"""The README cannot drift: its Python examples run, its atlas is the suites', its Quickstart is CI's."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
# each Python example, and the output the README shows under it ("" when it shows none)
EXAMPLES = re.findall(r"```python\n(.*?)```(?:\n```text\n(.*?)```)?", README, flags=re.S)
BLOCKS = [block for block, _ in EXAMPLES]


def shows(printed: str, expected: str) -> bool:
    """``printed`` is ``expected`` up to line wrapping, where ``…`` stands for anything."""
    parts = [re.escape(p) for p in " ".join(expected.split()).split("…")]
    return re.fullmatch(".*?".join(parts), " ".join(printed.split())) is not None


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
        # named as the shown output names it (the diagnosis quotes file:line)
        named = re.search(r"(\w+\.py):\d+", EXAMPLES[index][1])
        script = named.group(1) if named else "example.py"
        (tmp_path / script).write_text(block)
        argv = [sys.executable, script]
    done = subprocess.run(
        argv, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    expected = EXAMPLES[index][1]
    assert not expected or shows(done.stdout, expected), (
        f"README.md shows:\n{expected}\nthe example prints:\n{done.stdout}"
    )


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
