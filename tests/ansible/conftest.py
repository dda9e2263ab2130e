import pytest


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Let the deployment fixture see whether the test failed (to print the hosts' logs).
    rep = yield
    setattr(item, "rep_" + rep.when, rep)
    return rep
