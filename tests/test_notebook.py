"""queries/explore.ipynb runs top to bottom on a real lake, as data scientists work, so it never rots.

The lake: 3 generated days with dirty rows through the real pipeline (to the quality gate). The
notebook is executed by nbclient in a real IPython kernel, from a working directory that is not the
repository (it must find luigi.cfg and the lake by itself), with ECOMM_LAKE_DIR pointing at the lake.
Its results must be pandas DataFrames and matplotlib charts (PNG), and its HTML export (the
`jupyter nbconvert` command the notebook documents) must show every chart in a real browser.
"""
from __future__ import annotations

import base64
import json
import os
import re
import signal
import struct
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path

import nbclient
import nbformat
import pytest

from pipeline.lake import views
from tests.support import analytics_dataset
from tests.support.browser import Dom, headless
from tests.support.paths import REPO
from tests.support.processes import free_port, listening, wait_for

NOTEBOOK = REPO / "queries" / "explore.ipynb"
CHARTS = 6  # revenue per day, moving average, funnel, top products, new vs returning customers, quality
# appended to a copy of the export: once the page has loaded, records whether each image decoded, and its size
PROBE = """<script>
window.addEventListener('load', () => {
  for (const img of document.querySelectorAll('img')) {
    img.setAttribute('data-loaded', img.complete && img.naturalWidth > 0 ? 'yes' : 'no');
    const box = img.getBoundingClientRect();
    img.setAttribute('data-rendered', box.width.toFixed(0) + 'x' + box.height.toFixed(0));
  }
});
</script>"""


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory, embedded_server):
    root = tmp_path_factory.mktemp("notebook")
    with analytics_dataset.pipeline_dataset(root, embedded_server, publish=False, days=3) as data:
        yield data


@pytest.fixture(scope="module")
def executed(lake, tmp_path_factory: pytest.TempPathFactory) -> nbformat.NotebookNode:
    assert os.environ["ECOMM_LAKE_DIR"] == str(lake.lake)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=180, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path_factory.mktemp("cwd"))}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if any cell fails
    return notebook


@pytest.mark.slow
def test_installed_as_a_package_the_notebook_reads_the_luigi_cfg_of_its_own_folder(lake, tmp_path: Path,
                                                                                    monkeypatch) -> None:
    """Outside a checkout (the package in site-packages), the setup cell went to site-packages' parent for luigi.cfg
    and looked for the lake there, telling the user to set the [paths] lake_dir they had set."""
    import shutil

    site = tmp_path / "site-packages"  # laid out as the wheel installs it (pyproject.toml's force-include)
    shutil.copytree(REPO / "pipeline", site / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    shipped = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    for source, target in shipped["force-include"].items():
        (shutil.copytree if (REPO / source).is_dir() else shutil.copy)(REPO / source, site / target)
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    (deploy / "luigi.cfg").write_text(f"[paths]\nlake_dir = {lake.lake}\n")
    monkeypatch.delenv("ECOMM_LAKE_DIR")
    monkeypatch.setenv("PYTHONPATH", str(site))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    setup = next(cell for cell in notebook.cells if cell.cell_type == "code")
    notebook.cells = [setup, nbformat.v4.new_code_cell("print(pipeline.__file__, con.execute('select count(*) from"
                                                       " warehouse.fact_orders').fetchone()[0])")]
    client = nbclient.NotebookClient(notebook, timeout=180, kernel_name="python3",
                                     resources={"metadata": {"path": str(deploy)}})
    client.execute()
    printed = notebook.cells[1].outputs[0]["text"].split()
    assert printed[0] == str(site / "pipeline" / "__init__.py")
    assert int(printed[1]) == views.open_lake(lake.lake).execute("select count(*) from warehouse.fact_orders").fetchone()[0]


def _outputs(notebook: nbformat.NotebookNode) -> list[dict]:
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]


def test_the_notebook_is_committed_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "clear the outputs before committing"


@pytest.mark.slow
def test_the_notebook_shows_dataframes_and_matplotlib_charts(executed, lake) -> None:
    outputs = _outputs(executed)
    assert not [o for o in outputs if o.output_type == "error"]
    charts = [base64.b64decode(o["data"]["image/png"]) for o in outputs if "image/png" in o.get("data", {})]
    assert len(charts) == CHARTS, "one matplotlib figure per chart cell"
    for png in charts:
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
        assert width >= 600 and height >= 250, f"a chart of {width}x{height} pixels"
    tables = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert len(tables) >= 8 and all('class="dataframe' in t for t in tables), "query results are DataFrames"
    text = "\n".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)
    for name in views.queries():
        assert name in text, f"the notebook lists queries/{name}.sql"
    # the numbers are the lake's: the headline table shows each day's order count
    con = views.open_lake(lake.lake)
    for kpi_date, order_count in con.execute("select kpi_date, order_count from (" + views.query_text("daily_kpis")
                                             + ") as q").fetchall():
        assert str(kpi_date) in text and str(order_count) in text


@pytest.mark.slow
def test_the_html_export_shows_every_chart_in_a_browser(executed, chromium, tmp_path: Path) -> None:
    source = tmp_path / "explore.ipynb"
    nbformat.write(executed, source)
    jupyter = Path(sys.executable).parent / "jupyter"  # the environment's, as `jupyter nbconvert` in .venv
    subprocess.run([str(jupyter), "nbconvert", "--to", "html", str(source), "--output-dir", str(tmp_path / "html")],
                   capture_output=True, text=True, timeout=300, check=True)
    page = (tmp_path / "html" / "explore.html").read_text(encoding="utf-8")
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = Dom(headless(chromium, tmp_path, "--dump-dom", probe.as_uri()).stdout)
    images = dom.find("img")
    assert len(images) == CHARTS
    for image in images:
        assert image["attrs"].get("data-loaded") == "yes", f"a broken image: {image['attrs'].get('src', '')[:60]}"
        width, height = map(int, image["attrs"]["data-rendered"].split("x"))
        assert width > 300 and height > 100
    assert len(dom.find("table", **{"class": "dataframe"})) >= 8


def test_make_notebook_serves_the_notebook_in_jupyterlab(tmp_path: Path) -> None:
    """`make notebook` starts JupyterLab on 127.0.0.1, prints its URL, and that URL serves the notebook."""
    port = free_port()
    log = tmp_path / "jupyter.log"
    env = {**os.environ, "UV_OFFLINE": "1", "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}
    with log.open("w") as out:
        server = subprocess.Popen(["make", "notebook", f"NOTEBOOK_ARGS=--port {port} --no-browser"], cwd=REPO, env=env,
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        printed = re.compile(rf"http://127\.0\.0\.1:{port}/lab/tree/queries/explore\.ipynb\?token=(\w+)")
        wait_for(lambda: printed.search(log.read_text()) or server.poll() is not None, timeout=180,
                 what="JupyterLab to print its URL")
        found = printed.search(log.read_text())
        assert found, f"make notebook printed no URL of the notebook:\n{log.read_text()[-3000:]}"
        # Jupyter Server prints its URL first and binds the port on its event loop's first turn
        wait_for(lambda: listening(port) or server.poll() is not None, timeout=60, what="JupyterLab to listen")
        with urllib.request.urlopen(found.group(0), timeout=30) as page:
            assert page.status == 200 and "JupyterLab" in page.read().decode()
        api = f"http://127.0.0.1:{port}/api/contents/queries/explore.ipynb?token={found.group(1)}"
        with urllib.request.urlopen(api, timeout=30) as reply:
            served = json.load(reply)
        assert served["type"] == "notebook" and served["content"]["cells"][0]["source"].startswith("# Exploring the lake")
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)  # make, uv and jupyter: the group this test started
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=30)
