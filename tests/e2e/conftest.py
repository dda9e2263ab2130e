import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Let fixtures see whether the test itself failed (to dump process logs).
    rep = yield
    setattr(item, "rep_" + rep.when, rep)
    return rep
