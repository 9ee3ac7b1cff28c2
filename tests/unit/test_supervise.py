"""``nextoffer worker`` supervises the worker process: a worker that exits stuck (code 75) is
started again, any other exit ends the command with that code, and restarts are bounded."""
import sys

from nextoffer.streams.worker.supervisor import supervise


def script(tmp_path, codes):
    """A stand-in worker that exits with the next code of ``codes`` on each start."""
    count = tmp_path / "starts"
    count.write_text("0")
    body = (f"import sys; from pathlib import Path; p = Path({str(count)!r}); n = int(p.read_text()); "
            f"p.write_text(str(n + 1)); sys.exit({list(codes)!r}[n])")
    return [sys.executable, "-c", body], count


def test_a_stuck_worker_is_started_again_and_a_clean_exit_ends_it(tmp_path):
    command, starts = script(tmp_path, [75, 75, 0])
    assert supervise(command) == 0
    assert starts.read_text() == "3"


def test_other_failures_are_not_restarted(tmp_path):
    command, starts = script(tmp_path, [1, 0])
    assert supervise(command) == 1 and starts.read_text() == "1"


def test_restarts_are_bounded(tmp_path):
    command, starts = script(tmp_path, [75] * 10)
    assert supervise(command, max_restarts=3) == 75
    assert starts.read_text() == "4"


def test_the_worker_refuses_a_faust_outside_the_tested_range_and_says_what_to_install():
    import pytest
    from nextoffer.streams.worker.faust_internals import UnsupportedFaust, check_version
    assert check_version() == check_version(None)          # the installed one is in range
    with pytest.raises(UnsupportedFaust, match=r"pip install 'faust-streaming>=0.15.3,<0.16.0'"):
        check_version("0.16.1")
    import tomllib
    from pathlib import Path
    pinned = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert "faust-streaming>=0.15.3,<0.16" in pinned["project"]["dependencies"], "pyproject pins the same range"
