"""The package as installed: the compiled core is what `import ourdl` gives, and nothing else."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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


def _section_names(path):
    """The section names of an ELF shared object (what `readelf -S` lists), read by hand."""
    import struct
    data = Path(path).read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2, "a 64-bit ELF file"
    order = "<" if data[5] == 1 else ">"
    shoff, = struct.unpack_from(order + "Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", data, 0x3A)

    def header(i):  # (name offset, file offset of the section)
        base = shoff + i * shentsize
        return struct.unpack_from(order + "I", data, base)[0], \
            struct.unpack_from(order + "Q", data, base + 0x18)[0]
    strings = header(shstrndx)[1]
    names = []
    for i in range(shnum):
        start = strings + header(i)[0]
        names.append(data[start:data.index(b"\0", start)].decode())
    return names


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads ELF files")
@pytest.mark.skipif(os.environ.get("OURDL_DEBUG", "") not in ("", "0"),
                    reason="OURDL_DEBUG builds keep their debug info on purpose")
def test_the_compiled_modules_carry_no_debug_info():
    modules = sorted(Path(ourdl.__file__).parent.glob("_*.so"))
    assert len(modules) == 7
    for module in modules:
        assert ".debug_info" not in _section_names(module), module.name


def test_the_metadata_carries_the_license_and_the_one_version():
    from importlib import metadata
    info = metadata.metadata("ourdl")
    assert info["License-Expression"] == "MIT"
    assert "LICENSE" in info.get_all("License-File")
    shipped = [f for f in metadata.distribution("ourdl").files if f.name == "LICENSE"]
    assert shipped and "MIT License" in shipped[0].read_text()
    assert metadata.version("ourdl") == ourdl.__version__
    assert "seed" not in info["Summary"]
