import pytest

from seilab.kmc import simulate


@pytest.fixture(scope="session")
def small_run():
    """A short run on a small box, shared by the bookkeeping tests."""
    return simulate("paper", cycles=4, seed=11, box=(4, 4, 16))
