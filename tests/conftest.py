"""Fixtures of the Python module's tests (tests/python_*_test.py, run by CTest with pytest).

Environment (set by tests/CMakeLists.txt):
  PYTHONPATH              the build tree's python/ directory, holding the module
  CHECKPOINTCTL           the checkpointctl binary
  CHECKPOINT_TEST_WORKER  tests/worker.cpp, a C++ process using the library
  CHECKPOINT_SANITIZE     the sanitizers of this build ("" for a plain build)
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import checkpoint

SANITIZE = os.environ.get("CHECKPOINT_SANITIZE", "")
TIMEOUT = 300  # seconds, for every child process


def required_binary(variable):
    value = os.environ.get(variable)
    if not value or not os.access(value, os.X_OK):
        pytest.fail(f"{variable} must name an executable (got {value!r}); run through ctest",
                    pytrace=False)
    return value


@pytest.fixture
def directory(tmp_path):
    """A fresh checkpoint directory (not created yet)."""
    return tmp_path / "checkpoints"


@pytest.fixture
def manager(directory):
    with checkpoint.CheckpointManager(directory) as opened:
        yield opened


def run_python(code, cwd, *args, check=True):
    """Runs `code` in a new interpreter (this one, so the same module and sanitizer runtime)."""
    result = subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=cwd,
                            capture_output=True, text=True, timeout=TIMEOUT)
    if check and result.returncode != 0:
        pytest.fail(f"child Python exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def module_path():
    return Path(checkpoint.__file__).resolve()
