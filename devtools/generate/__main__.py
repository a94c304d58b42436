"""`python -m devtools.generate`: sample data in the seed system's formats (see devtools/generate/__init__.py)."""
from devtools.generate import main

raise SystemExit(main())
