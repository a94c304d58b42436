"""queries/explore.ipynb runs top to bottom on a real lake, so it never rots.

The lake: 3 generated days with dirty rows through the real pipeline (to the quality gate). The
notebook is executed by nbclient in a real IPython kernel, from a working directory that is not the
repository (it must find luigi.cfg and the lake by itself), with ECOMM_LAKE_DIR pointing at the lake.
"""
from __future__ import annotations

import os
from pathlib import Path

import nbclient
import nbformat
import pytest

from pipeline.lake import views
from tests.support import analytics_dataset

NOTEBOOK = Path(__file__).resolve().parent.parent / "queries" / "explore.ipynb"


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory, embedded_server):
    root = tmp_path_factory.mktemp("notebook")
    with analytics_dataset.pipeline_dataset(root, embedded_server, publish=False, days=3) as data:
        yield data


def test_the_notebook_is_committed_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "clear the outputs before committing"


@pytest.mark.slow
def test_the_notebook_runs_and_draws_its_charts(lake, tmp_path: Path) -> None:
    assert os.environ["ECOMM_LAKE_DIR"] == str(lake.lake)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=180, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if any cell fails
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    charts = [o["data"]["image/svg+xml"] for o in outputs if "image/svg+xml" in o.get("data", {})]
    assert len(charts) == 5 and all('data-chart="' in svg and "<rect" in svg for svg in charts)
    text = "\n".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)
    for name in views.queries():
        assert name in text, f"the notebook lists queries/{name}.sql"
    # the numbers are the lake's: the headline table shows each day's order count
    con = views.open_lake(lake.lake)
    for kpi_date, order_count in con.execute("select kpi_date, order_count from (" + views.query_text("daily_kpis")
                                             + ") as q").fetchall():
        assert str(kpi_date) in text and str(order_count) in text
