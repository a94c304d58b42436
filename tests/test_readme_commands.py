"""Every command the README prints works as printed, in a fresh clone, in the order a user meets it.

The clone is the repository as it is on disk (every tracked and every new, unignored file, committed
into a new git repository in a temporary folder), so the test sees uncommitted edits as a commit
would. The shell is a user's: the PATH without any virtualenv, uv on it (as after `make setup`, or
installed), and nothing from the test session's ECOMM_*, PG* or LUIGI_* variables. Then:

1. the README's first ```bash block: `make demo` (with a smaller week, `DEMO_ARGS`, to keep the suite
   fast; the same dates) — `make test` is the suite running this test, so it is not run again;
2. every later ```bash block, command by command exactly as printed, in ONE bash session, so that
   `source .venv/bin/activate` carries over as it does for a user; each command must exit 0, and
   the key ones must print what they promise;
3. the commands the demo printed as its next steps, as printed, in the same kind of shell;
4. `git status` of the clone is clean: nothing a command wrote is left for a user to commit;
5. `make clean` takes the clone back to its fresh state (the environment aside).

No network: uv runs offline from the cache `make setup` filled (UV_OFFLINE=1), and the clone's
embedded Postgres listens on a free port (ECOMM_PG_PORT), so a developer's own server on 54320 is
never touched. The clone's server is stopped at the end, whatever happened.
"""
from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO
from tests.support.processes import free_port

# A week of the demo's dates, small: 7 days x 200 orders / 2,000 events instead of 3,000 / 30,000.
DEMO_ARGS = "--orders-per-day 200 --events-per-day 2000"
# Commands of the first block that the test cannot run as printed, and why.
NOT_RUN = {"make test": "the test suite running this test"}
# What the key commands must print (a regex searched in the command's own output).
PROMISES = {
    "make demo": r"7 of 7 date\(s\) published",
    "luigi --module pipeline.tasks DailyPipeline --date 2025-12-15": r"2025-12-15 .*published",
    # everything is published already: Luigi finds RangeDaily complete (no run summary: no date ran)
    "luigi --module pipeline.tasks RangeDaily": r"This progress looks :\)",
    "python -m pipeline summary": r"7 of 7 date\(s\) published",
    "python -m pipeline.serving.pg dsn --bi": r"(?m)^postgresql://bi_reader@127\.0\.0\.1:{port}/ecomm$",
    "python -m pipeline.serving.pg psql --bi": r"2025-12-19 .*\n\(7 rows\)",
    "python -m pipeline report --date": r"reports/daily_report_\d{{4}}-\d\d-\d\d\.html",
}
MARK = ":::readme-test"


def fenced_bash_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", markdown, flags=re.S | re.M)


def commands(block: str) -> list[str]:
    """The command lines of a block (comments and blank lines left out, continuations joined)."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def clone(dest: Path) -> Path:
    """The repository as on disk (tracked and new unignored files), committed into a new repository."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():  # a file deleted on disk is not in the clone either
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    for command in (["git", "init", "-q"], ["git", "add", "-A"],
                    ["git", "-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "-qm", "clone"]):
        subprocess.run(command, cwd=dest, check=True, capture_output=True)
    return dest


def user_env(port: int) -> dict[str, str]:
    """A user's shell: no virtualenv on the PATH, uv on it, none of the test session's settings."""
    venv = Path(sys.prefix)
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and not Path(p).is_relative_to(venv)]
    if not shutil.which("uv", path=os.pathsep.join(path)):
        uv = os.environ.get("UV") or shutil.which("uv") or str(REPO / ".tools" / "bin" / "uv")
        assert Path(uv).is_file(), "uv not found: run `make setup` (it installs uv into .tools/)"
        path.insert(0, str(Path(uv).parent))
    dropped = ("ECOMM_", "PG", "LUIGI_", "AWS_", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "MAKE", "MFLAGS")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env.update(PATH=os.pathsep.join(path), UV_OFFLINE="1", ECOMM_PG_PORT=str(port))
    return env


def script(lines: list[str]) -> str:
    """One bash session running each line as printed; a marker before it, its exit code after it."""
    parts = []
    for index, line in enumerate(lines):
        parts += [f"echo '{MARK} run {index}'", line,
                  f"rc=$?; echo; echo \"{MARK} rc {index} $rc $SECONDS $(command -v python)\"; [ $rc -eq 0 ] || exit $rc"]
    return "\n".join(parts) + "\n"


def run_session(lines: list[str], cwd: Path, env: dict[str, str], timeout: float) -> dict[str, tuple[int, str, str]]:
    """Run `lines` in one bash; each line -> (exit code, the python on the PATH after it, its output)."""
    done = subprocess.run(["bash", "-c", script(lines)], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False)
    results = {}
    for index, line in enumerate(lines):
        found = re.search(rf"{MARK} run {index}\n(.*?)\n{MARK} rc {index} (\d+) (\d+) ?(\S*)", done.stdout, flags=re.S)
        assert found, f"`{line}` did not finish (bash exit {done.returncode}):\n{done.stdout[-5000:]}"
        print(f"[{found.group(3)}s into the session] {line}")  # where the time goes, shown with -s or a failure
        results[line] = (int(found.group(2)), found.group(4), found.group(1))
        assert results[line][0] == 0, f"`{line}` exited {results[line][0]}:\n{found.group(1)[-5000:]}"
    return results


def check_promises(results: dict[str, tuple[int, str, str]], port: int) -> None:
    for line, (_, _, output) in results.items():
        for prefix, pattern in PROMISES.items():
            if line.startswith(prefix):
                assert re.search(pattern.format(port=port), output), f"`{line}` did not print {pattern!r}:\n{output[-3000:]}"


def next_steps(demo_output: str) -> list[str]:
    """The commands the demo printed under 'Next, in this shell:' (one per line, a # comment after it)."""
    tail = demo_output.split("Next, in this shell:\n", 1)
    assert len(tail) == 2, f"the demo printed no next steps:\n{demo_output[-3000:]}"
    steps = []
    for line in tail[1].splitlines():
        if not line.startswith("  ") or not line.strip():
            break
        steps.append(line.split(" # ", 1)[0].strip())
    return steps


def test_the_readme_prints_no_uv_run_and_says_once_how_to_activate() -> None:
    blocks = fenced_bash_blocks((REPO / "README.md").read_text(encoding="utf-8"))
    lines = [line for block in blocks for line in commands(block)]
    assert lines.count("source .venv/bin/activate") == 1
    assert not [line for line in lines if re.match(r"(uv|\.tools/|\.venv/bin/)", line) or "uv run" in line]
    assert [line for line in commands(blocks[0])] and all(
        line.split("#")[0].strip() in {"make demo", *NOT_RUN} for line in commands(blocks[0]))


def test_no_command_the_code_prints_needs_uv_on_the_path() -> None:
    """Help texts, log lines and error messages of pipeline/ and devtools/ name plain commands."""
    offending = []
    for folder in ("pipeline", "devtools"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and "uv run" in node.value:
                    offending.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert offending == [], "these strings tell a user to run `uv run ...` (uv is in .tools/, not on the PATH)"


@pytest.mark.slow
def test_every_readme_command_works_as_printed_in_a_fresh_clone(tmp_path: Path) -> None:
    checkout = clone(tmp_path / "clone")
    port = free_port()
    env = user_env(port)
    blocks = fenced_bash_blocks((checkout / "README.md").read_text(encoding="utf-8"))
    first = [f'make demo DEMO_ARGS="{DEMO_ARGS}"' if line.startswith("make demo") else line
             for line in commands(blocks[0]) if not line.startswith(tuple(NOT_RUN))]
    rest = [line for block in blocks[1:] for line in commands(block)]
    try:
        setup = run_session(first, checkout, env, timeout=900)
        check_promises({line.split(" DEMO_ARGS")[0]: result for line, result in setup.items()}, port)
        demo_output = next(output for line, (_, _, output) in setup.items() if line.startswith("make demo"))
        assert "uv run" not in demo_output.split("\n== 1/3", 1)[1], "a hint of the demo (make echoes its own command)"

        readme = run_session(rest, checkout, env, timeout=600)
        check_promises(readme, port)
        activated = rest.index("source .venv/bin/activate")
        for line in rest[activated:]:  # from there on, `python` is the clone's
            assert readme[line][1] == str(checkout / ".venv" / "bin" / "python"), line
        assert (checkout / "reports" / "daily_report_2025-12-15.html").is_file()

        steps = next_steps(demo_output)
        assert steps[0] == "source .venv/bin/activate" and steps[-1] == "python -m pipeline.serving.pg stop"
        hinted = run_session(steps, checkout, env, timeout=300)
        check_promises(hinted, port)
        assert "stopped" in hinted[steps[-1]][2]

        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=checkout,
                                capture_output=True, text=True, check=True).stdout
        assert status == "", f"the commands left files a user would have to ignore or commit:\n{status}"

        # `make clean` (the server running again) leaves a fresh clone's state: no lake, no incoming
        # files, no reports and no embedded Postgres that would still call the dates published
        restarted = run_session([".venv/bin/python -m pipeline.serving.pg start", "make clean"], checkout, env,
                                timeout=300)
        assert "stopped" in restarted["make clean"][2]
        left = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=checkout,
                              capture_output=True, text=True, check=True).stdout.splitlines()
        assert {line for line in left if "__pycache__" not in line} <= {"!! .tools/", "!! .venv/"}, left
    finally:
        python = checkout / ".venv" / "bin" / "python"
        if python.exists():
            subprocess.run([str(python), "-m", "pipeline.serving.pg", "stop"], cwd=checkout, env=env,
                           capture_output=True, timeout=120, check=False)
        print(shlex.join(["# the clone:", str(checkout)]))
