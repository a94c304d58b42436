"""Where things are: the repository and the fixture files the tests read."""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
SEED_INCOMING = FIXTURES / "seed-format" / "incoming"  # the seed system's own two days of incoming files
DUMMYJSON = REPO / "devtools" / "generate" / "dummyjson"  # the DummyJSON catalog (products.json, users.json)
