"""The publish workflow (.github/workflows/publish.yml), checked without running it.

It cannot run here (no GitHub runner, no network), so these tests check what can be checked
offline: it is a valid GitHub workflow (check-jsonschema's vendored schema), its shell steps
parse, it runs the README's two commands on one build, deploys only from main after both the
book and the Binder image built, and names its tools and Python by exact version.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from bookbuild import REPO

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
PUBLISH = REPO / ".github" / "workflows" / "publish.yml"


def _schema_check(*paths: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
               *map(str, paths)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def workflow() -> dict:
    # PyYAML reads the key `on` as True (YAML 1.1); put it back under its name
    data = yaml.safe_load(PUBLISH.read_text())
    data["on"] = data.pop(True, data.get("on"))
    return data


def _runs(job: dict) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def _uses(job: dict) -> list[str]:
    return [step["uses"] for step in job["steps"] if "uses" in step]


def test_workflows_are_valid_github_workflows():
    assert WORKFLOWS, "no workflow in .github/workflows"
    result = _schema_check(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_catches_a_broken_workflow(tmp_path):
    """The check above can fail: a job without `runs-on` and a step with an unknown key are refused."""
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  build:\n    steps:\n      - run: make book\n        colour: blue\n")
    result = _schema_check(broken)
    assert result.returncode != 0, result.stdout


def test_shell_steps_parse(workflow):
    for name, job in workflow["jobs"].items():
        for script in _runs(job):
            script = re.sub(r"\$\{\{[^}]*\}\}", "x", script)  # GitHub expressions are filled in before bash runs
            result = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
            assert result.returncode == 0, f"job {name}: {result.stderr}\n{script}"


def test_book_job_runs_the_readme_commands_on_one_build(workflow):
    book = workflow["jobs"]["book"]
    runs = _runs(book)
    readme = (REPO / "README.md").read_text()
    for command in ("make book", "make test"):
        assert command in readme, f"the README does not show `{command}`"
        assert command in runs, f"the workflow does not run `{command}`"
    assert runs.index("make book") < runs.index("make test")
    test_step = next(step for step in book["steps"] if step.get("run") == "make test")
    assert test_step["env"]["PYTEST_ADDOPTS"] == "--book-prebuilt", "the tests should check the site `make book` built"
    check = next(r for r in runs if "_ext/repository.py" in r)
    assert runs.index(check) < runs.index("make book") and "--check --expect" in check and "GITHUB_REPOSITORY" in check
    upload = next(step for step in book["steps"] if step.get("uses", "").startswith("actions/upload-pages-artifact@"))
    assert upload["with"]["path"] == "_build/html"
    assert any("apt-get install -y chromium" in r for r in runs), "the browser tests need Debian's chromium"


def test_python_matches_binder_and_readme(workflow):
    runtime = (REPO / "binder" / "runtime.txt").read_text().strip()  # python-3.11
    version = runtime.removeprefix("python-")
    assert workflow["jobs"]["book"]["container"].startswith(f"python:{version}-")
    setup = next(s for s in workflow["jobs"]["binder"]["steps"] if s.get("uses", "").startswith("actions/setup-python@"))
    assert setup["with"]["python-version"] == version
    assert f"{version} is tested" in (REPO / "README.md").read_text()


def test_binder_job_builds_the_image_and_runs_a_chapter(workflow):
    runs = "\n".join(_runs(workflow["jobs"]["binder"]))
    assert re.search(r"pip install jupyter-repo2docker==\d[\w.]*", runs), "repo2docker must be pinned"
    assert re.search(r"repo2docker --no-run .* \.\n", runs + "\n"), "repo2docker must build the repository root (it reads binder/)"
    assert "jupyter nbconvert --to notebook --execute" in runs and "torch.version.cuda is None" in runs
    assert (REPO / "binder" / "requirements.txt").is_file() and (REPO / "binder" / "postBuild").is_file()


def test_deploy_only_from_main_after_book_and_binder(workflow):
    deploy = workflow["jobs"]["deploy"]
    assert set(deploy["needs"]) == {"book", "binder"}
    assert "refs/heads/main" in deploy["if"] and "push" in deploy["if"]
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    assert any(u.startswith("actions/deploy-pages@") for u in _uses(deploy))
    assert workflow["permissions"] == {"contents": "read"}, "only the deploy job may write"
    assert workflow["on"]["push"]["branches"] == ["main"] and "pull_request" in workflow["on"]


def test_actions_are_pinned_to_a_version(workflow):
    for name, job in workflow["jobs"].items():
        for uses in _uses(job):
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@(v\d+(\.\d+)*|[0-9a-f]{40})", uses), f"job {name}: {uses}"
