"""The CLI stays thin and fast: --help imports no heavy library."""

from __future__ import annotations

import json
import subprocess
import sys


def test_help_imports_no_heavy_library():
    code = (
        "import sys\n"
        "from tunewise.cli import app\n"
        "try:\n"
        "    app(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'openai', 'lancedb', 'sentence_transformers', 'scipy', 'plotly')"
    " if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Usage" in r.stdout
    assert "HEAVY []" in r.stdout


HEAVY = ("scipy", "numpy", "torch", "transformers", "peft", "lancedb", "sentence_transformers", "pyarrow", "plotly",
         "openai")


def test_reading_a_task_and_refusing_bad_input_import_no_heavy_library(tmp_path):
    """Bad input is told at once: reading and checking a task, and the CLI refusing a broken one, load none of
    the libraries a run needs (scipy alone takes a second to import). Checked by what was imported, not by time."""
    from capitals import write_capitals_task

    good = write_capitals_task(tmp_path / "good", "http://unused")
    broken = tmp_path / "good" / "broken.yaml"
    broken.write_text(good.read_text().replace("metric: exact", "metric: accuracy"))
    code = (
        "import sys\n"
        "import tunewise\n"
        "from tunewise.evaluation.experiment import RunOptions, check_inputs\n"
        f"task = tunewise.load_task({str(good)!r})\n"
        f"check_inputs(task, RunOptions(runs_dir=__import__('pathlib').Path({str(tmp_path / 'runs')!r})))\n"
        "from tunewise.cli import main\n"
        f"sys.argv = ['tunewise', 'run', {str(broken)!r}, '--runs-dir', {str(tmp_path / 'runs')!r}]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as e:\n"
        "    print('EXIT', e.code)\n"
        f"print('HEAVY', [m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "unknown metric 'accuracy'" in r.stderr
    assert "EXIT 2" in r.stdout and "HEAVY []" in r.stdout, r.stdout
    assert not (tmp_path / "runs").exists()


def test_runs_and_show_on_empty_dir(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tunewise.cli", "runs", "--runs-dir", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0
    r = subprocess.run([sys.executable, "-m", "tunewise.cli", "show", "nope", "--runs-dir", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: no run 'nope' (looked in {tmp_path})"


def test_index_a_folder_twice_embeds_nothing_the_second_time(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(3):
        (docs / f"d{i}.md").write_text(f"# Doc {i}\n\nThe capital of Zor{i}ia is Quell{i}ton. It has a port.\n")
    cmd = [sys.executable, "-m", "tunewise.cli", "index", str(docs), "--runs-dir", str(tmp_path / "runs")]
    first = subprocess.run(cmd, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "3 documents, 3 chunks; 3 added" in first.stdout and "3 chunks embedded now" in first.stdout
    (docs / "d1.md").write_text("# Doc 1\n\nThe capital of Zor1ia is Brandton now.\n")
    second = subprocess.run(cmd, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert "1 changed, 0 removed, 2 unchanged; 1 chunks embedded now" in second.stdout


def test_finetune_export_writes_the_train_split_as_chat_jsonl(tmp_path):
    from capitals import write_capitals_task

    task = write_capitals_task(tmp_path / "task", "http://unused")
    out = tmp_path / "train.jsonl"
    r = subprocess.run([sys.executable, "-m", "tunewise.cli", "finetune", "export", str(task), "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 48  # train only
    assert rows[0]["messages"] == [
        {"role": "system", "content": "Answer with the name of the capital only."},
        {"role": "user", "content": "What is the capital of Alberia?"},  # Alania is a test example
        {"role": "assistant", "content": "BerAlville"},
    ]
    r = subprocess.run([sys.executable, "-m", "tunewise.cli", "finetune", "export", str(task), "--out", str(out), "--split", "test"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("error: --split must be train or dev")
