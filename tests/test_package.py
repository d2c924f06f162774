"""The package as installed: the compiled core is what `import ourdl` gives, and nothing else."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import ourdl


def test_import_ourdl_uses_the_compiled_core():
    assert Path(ourdl._core.__file__).suffix in (".so", ".pyd")
    assert type(ourdl.Node()) is ourdl._core.Node
    assert ourdl.compile is ourdl._core.compile


def test_without_the_compiled_core_import_fails_saying_how_to_build_it(tmp_path):
    """Never a silent fall-back to slow code: a copy of the package minus the extension."""
    shutil.copytree(Path(ourdl.__file__).parent, tmp_path / "ourdl",
                    ignore=shutil.ignore_patterns("_*.so", "_*.pyd", "__pycache__"))
    done = subprocess.run([sys.executable, "-c", "import ourdl"], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "compiled core (ourdl._core) is not built" in done.stderr
    assert "pip install ." in done.stderr
