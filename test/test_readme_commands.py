"""The README's test command must be exactly what CI runs, and both set-up commands must be present."""

import re

from conftest import REPO_ROOT


def _readme_bash_blocks() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    setup = text.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", setup, flags=re.S)]


def test_readme_has_exactly_two_setup_commands():
    blocks = _readme_bash_blocks()
    assert len(blocks) == 2
    assert "ssc-demo" in blocks[0]
    assert "pytest" in blocks[1]


def test_ci_runs_the_readme_test_command_verbatim():
    test_command = _readme_bash_blocks()[1]
    ci_lines = [line.strip() for line in (REPO_ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines
