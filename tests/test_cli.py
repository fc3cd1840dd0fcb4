"""The CLI stays thin and fast: --help imports no heavy library."""

from __future__ import annotations

import subprocess
import sys


def test_help_imports_neither_torch_nor_transformers():
    code = (
        "import sys\n"
        "from tunewise.cli import app\n"
        "try:\n"
        "    app(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'lancedb', 'sentence_transformers', 'scipy') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Usage" in r.stdout
    assert "HEAVY []" in r.stdout


def test_runs_and_show_on_empty_dir(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tunewise.cli", "runs", "--runs-dir", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0
    r = subprocess.run([sys.executable, "-m", "tunewise.cli", "show", "nope", "--runs-dir", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: no run 'nope' (looked in {tmp_path})"
