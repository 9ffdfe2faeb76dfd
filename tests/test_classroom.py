"""`make classroom`: the nbgrader course built from the chapters grades as it should.

Runs the whole build (instructor notebooks, `nbgrader generate_assignment`, two `nbgrader
autograde` runs) into a temporary folder. nbgrader is a pinned requirement: without it this
test fails, it does not skip.
"""

import re

import nbformat
import nbgrader  # noqa: F401  (a missing nbgrader must fail here, not skip)

from flowlab import classroom


def test_classroom_grades_solutions_full_and_blank_zero(tmp_path):
    out = tmp_path / "classroom"
    line = classroom.build(out)
    m = re.fullmatch(r"classroom: (\d+) chapters, (\d+) graded exercises; instructor solutions score "
                     r"(\d+)/(\d+); blank student versions score 0/(\d+)", line)
    assert m, line
    chapters, graded, got, top, blank_top = map(int, m.groups())
    assert chapters == len(list((classroom.ROOT / "book").glob("*.ipynb"))), "a chapter has no graded exercise"
    assert graded >= 2 * chapters + 5
    assert got == top == blank_top == graded

    source = sorted((out / "source" / "flowlab").glob("*.ipynb"))
    release = sorted((out / "release" / "flowlab").glob("*.ipynb"))
    assert [p.name for p in source] == [p.name for p in release] and len(source) == chapters
    n_grade_cells = 0
    for src, rel in zip(source, release):
        src_nb, rel_nb = nbformat.read(src, 4), nbformat.read(rel, 4)
        for a, b in zip(src_nb.cells, rel_nb.cells):
            meta = a.metadata["nbgrader"]
            if meta["solution"]:
                solution = a.source.split("### BEGIN SOLUTION\n")[1].split("\n### END SOLUTION")[0]
                assert solution.strip() and solution not in b.source, (rel.name, meta["grade_id"])
                assert "BEGIN SOLUTION" not in b.source
            else:  # text, imports and grade cells reach the students unchanged
                assert a.source == b.source, (rel.name, meta["grade_id"])
            n_grade_cells += bool(meta["grade"])
    assert n_grade_cells == graded


def test_exercise_parsing_finds_stub_solution_and_checker():
    title, imports, graded, skipped = classroom.exercises(classroom.ROOT / "book" / "universality.ipynb")
    labels = [e["label"] for e in graded]
    assert {"univ-ex-icdf", "univ-ex-order"} <= set(labels) and not skipped
    icdf = graded[labels.index("univ-ex-icdf")]
    assert icdf["check"] == "check.check_inverse_cdf(inverse_cdf)"
    assert "return None" in icdf["stub"] and "log1p" in icdf["solution"] and "check_" not in icdf["solution"]
    assert "import flowlab as fl" in imports


def test_a_flow_used_by_an_exercise_comes_with_the_call_that_trains_it():
    title, imports, graded, skipped = classroom.exercises(classroom.ROOT / "book" / "objectives.ipynb")
    ex4 = next(e for e in graded if e["label"] == "objectives-ex-4")
    assert ex4["context"][0].startswith("x_two = ")  # what the training call needs comes first
    assert ex4["context"][1].startswith("maf_two = ") and "fl.fit(maf_two, x_two" in ex4["context"][1]
    # exercises on a chapter's own timing table stay in the chapter
    assert {"jacobian-cost-ex-3", "jacobian-cost-ex-4"} <= set(classroom.exercises(
        classroom.ROOT / "book" / "jacobian_cost.ipynb")[3])
