"""Every code block in README.md and docs/ that is runnable is run: Python in-process, shell commands as
subprocesses. A block is skipped only when the line before its fence says why:
``<!-- not run: starts a server -->``. Blocks without a language (program output) and data blocks
(yaml, json, text, mermaid, ini, toml) are not code."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# every page: README.md and all of docs/
PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md"))]
CODE = {"python": "python", "py": "python", "sh": "sh", "bash": "sh", "shell": "sh", "console": "sh"}
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")


@dataclass
class Block:
    page: str
    line: int
    lang: str
    code: str
    skip: str | None

    def __str__(self) -> str:
        return f"{self.page}:{self.line}"


def blocks(page: str) -> list[Block]:
    found, lines = [], (ROOT / page).read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, lang, start = m.group(1), m.group(2).lower(), i
        body = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][len(indent) :])
            i += 1
        i += 1
        before = lines[start - 1].strip() if start else ""
        skip = before[len("<!-- not run:") : -3].strip() if before.startswith("<!-- not run:") else None
        found.append(Block(page, start + 1, lang, "\n".join(body) + "\n", skip))
    return found


ALL = [b for page in PAGES for b in blocks(page)]
RUNNABLE = [b for b in ALL if b.lang in CODE]


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder that looks like the repository root for reading (examples/, benchmarks/) and
    keeps what the snippet writes; `apipeline` and `python` on PATH are this interpreter."""
    for name in ("examples", "benchmarks", "docs"):
        (tmp_path / name).symlink_to(ROOT / name)
    bin_dir = tmp_path / ".bin"
    bin_dir.mkdir()
    for name, target in (("apipeline", "-m apipeline.cli.main"), ("python", "")):
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" {target} "$@"\n')
        shim.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_pages_are_found_and_every_skip_says_why():
    assert "docs/graphs.md" in PAGES and RUNNABLE
    assert {"docs/protocol.md", "docs/deploy.md", "docs/benchmarks.md", "docs/chatbot.md"} <= set(PAGES)
    for b in ALL:
        assert b.skip is None or b.skip, f"{b}: '<!-- not run: -->' needs a reason"
        assert b.lang in CODE or b.lang in {"", "yaml", "json", "text", "mermaid", "ini", "toml", "proto"}, (
            f"{b}: unknown block language {b.lang!r}"
        )


@pytest.mark.timeout(300)
@pytest.mark.parametrize("block", RUNNABLE, ids=str)
def test_snippet_runs(block: Block, sandbox: Path) -> None:
    if block.skip:
        pytest.skip(f"not run: {block.skip}")
    if CODE[block.lang] == "python":
        assert "await " not in re.sub(r"async def[\s\S]*?(?=^\S)", "", block.code, flags=re.M) or (
            "asyncio.run" in block.code
        ), f"{block}: top-level await does not run as a script; use asyncio.run(main())"
        code = compile(block.code, str(block), "exec")
        try:
            exec(code, {"__name__": "__main__"})
        finally:
            asyncio.set_event_loop(None)
        return
    script = re.sub(r"(?m)(^|\s)\.venv/bin/", r"\1", block.code)
    env = {**os.environ, "PATH": f"{sandbox / '.bin'}{os.pathsep}{os.environ['PATH']}"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=sandbox,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, f"{block} failed:\n{script}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"


def test_shims_are_cleaned_up(sandbox: Path) -> None:
    assert shutil.which("apipeline", path=str(sandbox / ".bin"))
