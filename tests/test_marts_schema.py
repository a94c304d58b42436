"""The marts' Postgres views run the same text as the lake's: each `create view marts.<view>` of a serving
migration is its model file, sql/marts/<view>.sql, so both engines answer alike."""
from __future__ import annotations

import re

from pipeline.serving import migrations
from pipeline.transform import marts

VIEW = re.compile(r"create or replace view marts\.(\w+) as\n(.*?)\n;", re.S)


def _without_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--")).strip()


def test_every_mart_view_in_postgres_is_its_model_file() -> None:
    found = {}
    for path in sorted(migrations.SERVING_SQL_DIR.glob("*.sql")):
        for name, body in VIEW.findall(path.read_text().replace("select * from final;", "select * from final\n;")):
            found[name] = body
    assert set(found) == set(marts.VIEWS)
    for name, body in found.items():
        assert _without_comments(body) == _without_comments(marts.model_sql(name)), name
