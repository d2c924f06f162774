"""`python -m ourdl`: the same as the `ourdl` command."""
import sys

from ourdl.cli import main

sys.exit(main())
