"""ourdl under the tutorial's name: the tutorial saves its classes as OurDL.py and its programs
begin with ``from OurDL import *``; with ourdl installed they run unchanged."""
from ourdl import *  # noqa: F401,F403
from ourdl import __all__, __version__  # noqa: F401
