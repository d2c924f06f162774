"""Build the compiled core. One cythonize() call; directives are set here and nowhere else.

OURDL_DEBUG=1 builds with bounds and wraparound checks on (run the tests with it at least once).
OURDL_NO_CLONES=1 builds only the portable version of the loops that clones.h otherwise also
builds for AVX2 and AVX-512 (run the tests with it too: this machine would run the widest).
"""
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("OURDL_DEBUG", "") not in ("", "0")

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
}

# -ffp-contract=off: never fuse a*b+c into an FMA, so results match reference.py bit for bit.
# -fno-builtin-pow: keep pow(d, 2.0) a libm call, as CPython's ** is (GCC would fold it to d*d,
# which differs from glibc's pow in the last bit for about 1 in 1,000 inputs).
# -fno-tree-vectorize: the hot loops are chains of dependent operations over a dozen weights;
# packing them into vectors only lengthens the chain (measured: one epoch 18.5 ms -> 15.5 ms).
# The fused dense layers are the exception: their loops run across a layer's units, which are
# independent, so vectors do the same operations side by side, each unit's in its own order.
compile_args = ["-ffp-contract=off", "-fno-builtin-pow"]
# -g0: no debug info in a release build (it made the extensions 6x larger); OURDL_DEBUG keeps it.
compile_args += ["-O0", "-g"] if DEBUG else ["-O3", "-g0", "-fno-tree-vectorize"]
if os.environ.get("OURDL_NO_CLONES", "") not in ("", "0"):
    compile_args += ["-DOURDL_NO_CLONES"]
VECTORIZED = [] if DEBUG else ["-ftree-vectorize"]

# The compiled core, one extension per module (see the docstring of _core.pyx).
MODULES = {"_nodes": [], "_passes": [], "_kernels": [], "_fused": VECTORIZED, "_tape": [],
           "_driver": [], "_core": []}
extensions = [
    Extension(f"ourdl.{name}", [f"src/ourdl/{name}.pyx"], include_dirs=["src/ourdl"],
              depends=[f"src/ourdl/{h}.h" for h in ("clones", "dense", "linear", "select", "squares")], extra_compile_args=compile_args + extra)
    for name, extra in MODULES.items()
]

setup(
    ext_modules=cythonize(extensions, compiler_directives=directives, include_path=["src"]),
    package_dir={"": "src"},
)
