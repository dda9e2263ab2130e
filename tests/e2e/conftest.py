import sys
from pathlib import Path

import pytest

from vnfha_lab.etcdserver import EtcdServer

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory):
    """One real etcd on loopback for the e2e run; each cluster uses its own prefix."""
    server = EtcdServer(tmp_path_factory.mktemp("e2e-etcd") / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Let fixtures see whether the test itself failed (to dump process logs).
    rep = yield
    setattr(item, "rep_" + rep.when, rep)
    return rep
