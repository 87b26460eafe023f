"""The sandbox that runs model-written tests: coverage, and the limits that keep it contained."""

from pathlib import Path

from genlab.apps.sandbox import Limits, run_tests
from genlab.core.settings import Settings

MODULE = "def sign(x):\n    if x < 0:\n        return -1\n    if x == 0:\n        return 0\n    return 1\n"


def _run(tests: str, tmp_path: Path, **limits):
    return run_tests(
        "m", MODULE, {"test_m.py": tests}, limits=Limits(**limits), settings=Settings(home=tmp_path)
    )


def test_a_passing_test_reports_the_lines_it_covered(tmp_path):
    run = _run("from m import sign\ndef test_neg():\n    assert sign(-3) == -1\n", tmp_path)
    assert run.built and run.passed
    assert run.statements == [1, 2, 3, 4, 5, 6]
    assert run.covered == {1, 2, 3}


def test_failing_and_unbuildable_tests_are_told_apart(tmp_path):
    failing = _run("from m import sign\ndef test_zero():\n    assert sign(0) == 1\n", tmp_path)
    assert failing.built and not failing.passed
    broken = _run("from m import nothing_here\ndef test_x():\n    pass\n", tmp_path)
    assert not broken.built


# Network, processes, writes and reads outside: the attacks are in tests/security/test_sandbox.py.


def test_time_and_memory_limits_stop_runaway_tests(tmp_path):
    loop = _run("def test_loop():\n    while True:\n        pass\n", tmp_path, seconds=2)
    assert loop.timed_out and not loop.passed
    hog = _run("def test_hog():\n    x = bytearray(4 * 2**30)\n", tmp_path, memory_mb=512)
    assert not hog.passed and "MemoryError" in hog.output


def test_scratch_directories_are_removed(tmp_path):
    _run("def test_ok():\n    open('here.txt', 'w').write('fine inside')\n", tmp_path)
    assert list((tmp_path / "scratch").iterdir()) == []
