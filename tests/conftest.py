"""Shared pytest options, markers and fixtures.

Options:
    --device=cuda      run the device-aware tests on another torch device (default: cpu)
    --book-root=PATH   build and check the book at PATH (default: this repository)
    --book-prebuilt    check the site already in <book-root>/_build instead of building it again

Markers (registered in pyproject.toml; ``make check`` leaves out all four):
    book       the test reads the built book (set here for every test that uses the ``book`` fixture)
    browser    the test drives Chromium or JupyterLab (set here for the modules in ``BROWSER``)
    classroom  the test builds and grades the nbgrader course (set here, see ``CLASSROOM``)
    slow       the test trains or computes for many seconds (set on the test itself)

Fixtures: ``device``, ``book``, ``shaken`` (:func:`flowlab.testing.shaken`: every parameter
moved away from the identity the transforms start at), and for the bad-input tests ``flow`` (a
small seeded MAF) and ``data`` (a function ``data(device, n=64)`` giving moons samples).
"""

from __future__ import annotations

import os

import pytest
import torch

from bookbuild import REPO, BookBuild, RunningBuild, previous_build

_BUILD_SECONDS: list[float] = []  # for the summary line at the end of the run
_BACKGROUND: list[RunningBuild] = []  # the book build started when collection ends


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu", help="torch device for the tests, e.g. cpu or cuda")
    parser.addoption("--book-root", default=str(REPO), help="folder holding the book's _config.yml and _toc.yml")
    parser.addoption(
        "--book-prebuilt",
        action="store_true",
        help="check the site in <book-root>/_build (and its build log) instead of building again",
    )


def pytest_configure(config):
    # the tests use small tensors: one CPU thread avoids oversubscribing a small machine
    torch.set_num_threads(1)
    # the same for the kernels that nbmake and the book build start (they inherit the environment):
    # on 2 cores, the opening chapter ran >5x slower with torch's default of 2 threads per kernel
    os.environ.setdefault("OMP_NUM_THREADS", "1")


BROWSER = {"test_browser.py", "test_replay_browser.py", "test_jupyterlab.py"}
"""Test modules that drive Chromium (and, for JupyterLab, a Jupyter server)."""
CLASSROOM = {
    "test_classroom.py::test_an_instructor_round_from_a_copied_course",
    "test_classroom.py::test_the_build_checks_itself_in_a_scratch_copy_and_never_deletes_a_live_course",
}
"""Tests that build the nbgrader course and grade it with nbgrader (minutes)."""


def _needs_book(item) -> bool:
    return "book" in getattr(item, "fixturenames", ())


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by these markers
def pytest_collection_modifyitems(session, config, items):
    for item in items:
        if _needs_book(item):
            item.add_marker(pytest.mark.book)
        if item.path.name in BROWSER:
            item.add_marker(pytest.mark.browser)
        name = f"{item.path.name}::{getattr(item, 'originalname', item.name)}"
        if name in CLASSROOM:
            item.add_marker(pytest.mark.classroom)
    # the tests that read the built book run last: the build, started in the background as soon
    # as collection ends, executes the chapters while the other tests run
    items.sort(key=_needs_book)


EARLY = {"test_classroom.py::test_an_instructor_round_from_a_copied_course": "start_round"}
"""Tests whose work is mostly subprocesses (nbgrader), started in a thread of their module as
soon as collection ends, so that they run beside the other tests; the test itself waits for it."""


def pytest_collection_finish(session):
    config = session.config
    if config.option.collectonly:
        return
    for item in session.items:
        start = EARLY.get(f"{item.path.name}::{getattr(item, 'originalname', item.name)}")
        if start:
            getattr(item.module, start)()
    if config.getoption("--book-prebuilt"):
        return
    if any(_needs_book(item) for item in session.items):
        _BACKGROUND.append(RunningBuild(config.getoption("--book-root")))


def pytest_sessionfinish(session, exitstatus):
    for running in _BACKGROUND:  # a run that ends early (-x, Ctrl-C) leaves no build behind
        running.stop()


@pytest.fixture(scope="session")
def device(request) -> torch.device:
    """The torch device chosen with --device (default: cpu)."""
    dev = torch.device(request.config.getoption("--device"))
    if dev.type == "cuda" and not torch.cuda.is_available():
        pytest.fail(f"--device {dev} was asked for, but torch sees no CUDA device", pytrace=False)
    return dev


@pytest.fixture(scope="session")
def shaken():
    """:func:`flowlab.testing.shaken`, the one way the tests move parameters away from the start:
    ``shaken(module, scale=0.3, seed=0, fan_in=False)`` adds ``scale`` times standard normal
    noise to every parameter, in place, and returns the module."""
    from flowlab.testing import shaken

    return shaken


@pytest.fixture
def flow(device):
    """A small MAF on 2 features with a standard normal base, on the --device, the same every
    time (seed 0, drawn without touching the global random state)."""
    import flowlab as fl  # here, not at the top: the book and browser tests do not need it

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return fl.Flow(fl.MAF(2, hidden=(8,)), fl.StandardNormal(2)).to(device)


def _moons(device, n: int = 64) -> torch.Tensor:
    import flowlab as fl

    return fl.targets.moons(n, seed=0).to(device)


@pytest.fixture
def data():
    """The function ``data(device, n=64)``: ``n`` samples of the moons data set (seed 0) on ``device``."""
    return _moons


@pytest.fixture(scope="session")
def book(request) -> BookBuild:
    """The book, built once per run with `jupyter-book build . --all -W -n --keep-going` (every chapter executed).

    The build starts in the background when collection ends (`pytest_collection_finish`) and
    the tests that need it run last. Fails every test that uses it, with the end of the build
    log, if the build fails or warns.
    """
    root = request.config.getoption("--book-root")
    if request.config.getoption("--book-prebuilt"):
        result = previous_build(root)
    else:
        result = (_BACKGROUND[0] if _BACKGROUND else RunningBuild(root)).result()
        _BUILD_SECONDS.append(result.seconds)
    problems = result.problems()
    if problems:
        pytest.fail(problems, pytrace=False)
    return result


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _BUILD_SECONDS:
        terminalreporter.write_line(f"book build (executing every chapter): {_BUILD_SECONDS[0]:.0f} s")
