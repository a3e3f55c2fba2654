"""The installed module: `cmake --install` puts it and its stubs into the interpreter's
package directory under the prefix, where it imports (finding the installed libcheckpoint
through its RUNPATH, not the build tree's) and works."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TIMEOUT


def environment(variable):
    value = os.environ.get(variable)
    if not value:
        pytest.fail(f"{variable} is not set; run through ctest", pytrace=False)
    return value


def test_cmake_install_puts_an_importable_module_and_its_stubs_under_the_prefix(tmp_path):
    prefix = tmp_path / "prefix"
    result = subprocess.run([environment("CMAKE_COMMAND"), "--install",
                             environment("CHECKPOINT_BINARY_DIR"), "--prefix", str(prefix)],
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stdout + result.stderr
    site = prefix / environment("CHECKPOINT_PYTHON_INSTALL_DIR")
    modules = list(site.glob("checkpoint*.so"))
    assert len(modules) == 1, sorted(p.name for p in site.iterdir())
    assert (site / "checkpoint.pyi").is_file()
    code = ("import checkpoint, sys\n"
            "manager = checkpoint.CheckpointManager(sys.argv[1])\n"
            "manager.save_checkpoint('installed')\n"
            "assert manager.has_checkpoint('installed')\n"
            "manager.close()\n"
            "print(checkpoint.__file__)\n"
            "print(''.join(line for line in open('/proc/self/maps') if 'libcheckpoint' in line))\n")
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "dir")], env=env,
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert Path(lines[0]) == modules[0]
    mapped = {line.split()[-1] for line in lines[1:] if line.strip()}
    assert mapped and all(path.startswith(str(prefix)) for path in mapped), mapped
