"""The original Python CheckpointManager, replaced by one import line.

The five examples of README.md's "Python" section (the original document's examples, only
the import changed) run, as scripts in a fresh working directory, once against the module and
once against the original class (ORIGINAL below); what they print and their exit statuses
must be the same, run after run. Then the original class's behaviour that was right, kept:
its names, its default directory, has/save/clear.
"""

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import checkpoint
from checkpoint import CheckpointManager

from conftest import TIMEOUT, module_path, required_binary

README = Path(__file__).resolve().parent.parent / "README.md"

# The original design, as its document described it: one <stage>.checkpoint file holding
# COMPLETED per finished stage, errors while saving logged and swallowed.
ORIGINAL = '''
import logging
import os


class CheckpointManager:
    def __init__(self, checkpoint_dir="checkpoints"):
        self.checkpoint_dir = checkpoint_dir
        os.makedirs(self.checkpoint_dir, exist_ok=True)

    def _get_checkpoint_path(self, stage_name):
        return os.path.join(self.checkpoint_dir, f"{stage_name}.checkpoint")

    def save_checkpoint(self, stage_name):
        try:
            with open(self._get_checkpoint_path(stage_name), "w") as f:
                f.write("COMPLETED")
            logging.info(f"Checkpoint saved for stage: {stage_name}")
        except Exception as e:
            logging.error(f"Failed to save checkpoint for stage {stage_name}: {e}")

    def has_checkpoint(self, stage_name):
        return os.path.exists(self._get_checkpoint_path(stage_name))

    def clear_checkpoints(self):
        for file in os.listdir(self.checkpoint_dir):
            if file.endswith(".checkpoint"):
                os.remove(os.path.join(self.checkpoint_dir, file))
'''


def readme_examples():
    """{number: code} of the '#### Example N' blocks of README.md's Python section."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### The original five examples"):text.index("### The API")]
    found = re.findall(r"^#### Example (\d+):[^\n]*\n+```python\n(.*?)^```", section,
                       re.MULTILINE | re.DOTALL)
    return {int(number): code for number, code in found}


EXAMPLES = readme_examples()

# For each example: the runs made one after the other in one working directory (arguments),
# and what the first implementation-independent check expects each to print.
SCENARIOS = {
    1: [([], "Ingesting data...\nPreprocessing data...\nTraining model...\nPipeline completed.\n"),
        ([], "Pipeline completed.\n")],
    2: [(["--interrupt"], "Running data_ingestion...\nRunning data_preprocessing...\n"
                          "Running model_training...\n"),
        ([], "Skipping data_ingestion: already completed.\nSkipping data_preprocessing: "
             "already completed.\nRunning model_training...\nPipeline completed.\n"),
        ([], "Skipping data_ingestion: already completed.\nSkipping data_preprocessing: "
             "already completed.\nSkipping model_training: already completed.\n"
             "Pipeline completed.\n")],
    3: [([], "True\nFalse\nFalse\n"), ([], "True\nFalse\nFalse\n")],
    4: [([], "Extracting features...\n"), ([], "Features already extracted.\n")],
    5: [([], "Error in risky_stage: the source file is malformed\nFalse\n"),
        ([], "Error in risky_stage: the source file is malformed\nFalse\n")],
}


def run_example(code, cwd, args, module_dir):
    script = cwd / "example.py"
    script.write_text(code, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(module_dir))
    return subprocess.run([sys.executable, str(script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)


def test_the_readme_has_the_five_examples():
    assert sorted(EXAMPLES) == [1, 2, 3, 4, 5]
    for number, code in EXAMPLES.items():
        imports = [line for line in code.splitlines() if "import" in line]
        assert "from checkpoint import CheckpointManager" in imports, number
        assert "CheckpointManager(" in code, number


@pytest.mark.parametrize("number", sorted(SCENARIOS))
def test_example_runs_unchanged_and_prints_what_the_original_prints(number, tmp_path):
    original_dir = tmp_path / "original_module"
    original_dir.mkdir()
    (original_dir / "checkpoint.py").write_text(ORIGINAL, encoding="utf-8")
    ours_cwd, original_cwd = tmp_path / "ours", tmp_path / "original"
    ours_cwd.mkdir()
    original_cwd.mkdir()
    for args, expected in SCENARIOS[number]:
        ours = run_example(EXAMPLES[number], ours_cwd, args, module_path().parent)
        original = run_example(EXAMPLES[number], original_cwd, args, original_dir)
        assert ours.stdout == expected, ours.stderr
        assert original.stdout == expected, original.stderr
        assert ours.returncode == original.returncode, (ours.stderr, original.stderr)
        if "--interrupt" in args:
            assert ours.returncode == 1 and "Interrupted during model_training." in ours.stderr
        else:
            assert ours.returncode == 0, ours.stderr
    # Ours kept a database where the original kept files: the same directory name.
    directory = "my_pipeline_checkpoints" if number == 4 else "checkpoints"
    assert (ours_cwd / directory / "checkpoints.db").is_file()
    assert not list((ours_cwd / directory).glob("*.checkpoint"))
    assert (original_cwd / directory).is_dir()


def test_example_2s_history_shows_the_interruption_and_the_resume(tmp_path):
    for args in (["--interrupt"], []):
        result = run_example(EXAMPLES[2], tmp_path, args, module_path().parent)
        assert result.returncode == (1 if args else 0), result.stderr
    ctl = required_binary("CHECKPOINTCTL")
    result = subprocess.run([ctl, "history", "--format", "csv"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    rows = [line.split(",")[2:4] for line in result.stdout.splitlines()[1:]]
    assert rows == [["data_ingestion", "completed"], ["data_preprocessing", "completed"],
                    ["model_training", "completed"]]
    with sqlite3.connect(tmp_path / "checkpoints" / "checkpoints.db") as db:
        runs = db.execute("SELECT count(*) FROM runs").fetchone()[0]
    assert runs == 2  # the interrupted run and the resuming one


def test_default_directory_is_checkpoints_created_at_construction(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    manager = CheckpointManager()
    assert manager.checkpoint_dir == "checkpoints"
    assert (tmp_path / "checkpoints").is_dir()  # as the original's os.makedirs
    assert Path(manager.database_path) == Path("checkpoints") / "checkpoints.db"
    manager.save_checkpoint("data_ingestion")
    manager.close()
    assert (tmp_path / "checkpoints" / "checkpoints.db").is_file()


def test_checkpoint_dir_is_kept_as_given(tmp_path):
    given = tmp_path / "a" / "b"
    manager = CheckpointManager(checkpoint_dir=given)
    assert manager.checkpoint_dir is given
    assert given.is_dir()
    manager.close()


def test_has_save_clear_behave_as_the_original(manager):
    assert manager.has_checkpoint("data_ingestion") is False
    assert manager.save_checkpoint("data_ingestion") is None
    assert manager.has_checkpoint("data_ingestion") is True
    manager.save_checkpoint("data_ingestion")  # saving again is fine, as it was
    assert manager.has_checkpoint("data_ingestion") is True
    manager.save_checkpoint("model_training")
    assert manager.clear_checkpoints() is None
    assert not manager.has_checkpoint("data_ingestion")
    assert not manager.has_checkpoint("model_training")
    manager.save_checkpoint("model_training")
    assert manager.has_checkpoint("model_training")
    assert not manager.has_checkpoint("data_ingestion")
    # unlike the original, nothing was lost: every save and the clear are history
    statuses = [(row.stage, row.status, row.version) for row in manager.history()]
    assert statuses == [("data_ingestion", "completed", 1), ("data_ingestion", "completed", 2),
                        ("model_training", "completed", 1), ("", "cleared", 0),
                        ("model_training", "completed", 2)]


def test_the_original_keyword_names(directory):
    manager = CheckpointManager(checkpoint_dir=directory)
    manager.save_checkpoint(stage_name="s")
    assert manager.has_checkpoint(stage_name="s")
    manager.close()


def test_a_failed_save_raises_where_the_original_swallowed_it(directory):
    CheckpointManager(directory).close()
    reader = CheckpointManager(directory, read_only=True)
    with pytest.raises(checkpoint.ReadOnlyError) as raised:
        reader.save_checkpoint("s")
    assert raised.value.code == "read_only"
    assert not reader.has_checkpoint("s")
    reader.close()


def test_a_stage_name_is_never_a_path(tmp_path, manager, directory):
    manager.save_checkpoint("../escaped")
    assert manager.has_checkpoint("../escaped")
    assert not (tmp_path / "escaped.checkpoint").exists()
    assert sorted(p.name for p in directory.iterdir()) == ["checkpoints.db", "checkpoints.db-shm",
                                                             "checkpoints.db-wal"]


def test_the_readmes_api_example_runs_and_resumes(tmp_path):
    """The "The API" example of README.md, with the functions it leaves to the reader
    defined, run twice: the second run runs no stage and gets the stored model back."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### The API"):]
    code = re.search(r"```python\n(.*?)^```", section, re.MULTILINE | re.DOTALL).group(1)
    assert "/var/lib/etl/checkpoints" in code
    code = code.replace("/var/lib/etl/checkpoints", str(tmp_path / "etl"))
    prelude = ("calls = []\n"
               "def download():\n    calls.append('download'); return b'raw rows'\n"
               "def preprocess(raw):\n    calls.append('preprocess'); return raw.upper()\n"
               "def fit(data):\n    calls.append('fit'); return b'model of ' + data\n")
    epilogue = "print(calls, model)\n"
    (tmp_path / "config.yaml").write_text("threshold: 3\n")
    script = tmp_path / "api_example.py"
    script.write_text(prelude + code + epilogue, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(module_path().parent))
    outputs = []
    for _ in range(2):
        result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=TIMEOUT)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
    assert outputs == ["['download', 'preprocess', 'fit'] b'model of RAW ROWS'\n",
                       "[] b'model of RAW ROWS'\n"]
    with CheckpointManager(tmp_path / "etl", pipeline="nightly-etl", read_only=True) as reader:
        assert [s.stage for s in reader.stages()] == ["ingest", "preprocess", "train"]
        assert reader.latest("preprocess").metadata == {"kept": 950}
        assert [i.stage for i in reader.latest("train").inputs] == ["preprocess"]
        # the second run only read: a manager that writes nothing records no run
        assert [r.outcome for r in reader.runs()] == ["finished"]
