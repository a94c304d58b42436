"""`python -m devtools.bench`: the benchmark (see devtools/bench/__init__.py)."""
import sys

from devtools.bench import main

sys.exit(main())
