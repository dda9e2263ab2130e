"""The structure contracts (.importlinter) hold on the tree, and each one catches the
thing it exists for when that thing is put back: a cycle, an I/O import in the core,
a product module importing the lab harness."""

from __future__ import annotations

import copy
from pathlib import Path

import grimp
import importlinter.configuration
import pytest
from importlinter.application.use_cases import read_user_options
from importlinter.contracts.acyclic_siblings import AcyclicSiblingsContract
from importlinter.contracts.forbidden import ForbiddenContract
from importlinter.contracts.protected import ProtectedContract
from importlinter.domain.contract import Contract

CONFIG = Path(__file__).resolve().parents[2] / ".importlinter"
TYPES: dict[str, type[Contract]] = {"acyclic_siblings": AcyclicSiblingsContract,
                                    "forbidden": ForbiddenContract,
                                    "protected": ProtectedContract}


@pytest.fixture(scope="module")
def setup() -> tuple[grimp.ImportGraph, dict[str, Contract]]:
    importlinter.configuration.configure()
    opts = read_user_options(str(CONFIG))
    contracts = {c["id"]: TYPES[c["type"]](name=c["name"], session_options=opts.session_options,
                                           contract_options=c)
                 for c in opts.contracts_options}
    graph = grimp.build_graph(*opts.session_options["root_packages"],
                              include_external_packages=True)
    return graph, contracts


def kept(setup: tuple[grimp.ImportGraph, dict[str, Contract]], contract: str,
         extra: tuple[str, str] | None = None) -> bool:
    graph, contracts = setup
    g = copy.deepcopy(graph)  # a check removes its ignored imports from its graph
    if extra is not None:
        g.add_import(importer=extra[0], imported=extra[1])
    return contracts[contract].check(g, verbose=False).kept


def test_every_contract_holds_on_the_tree(setup) -> None:
    assert set(setup[1]) == {"acyclic", "pure-core", "no-lab-in-product"}
    for name in setup[1]:
        assert kept(setup, name), name


@pytest.mark.parametrize("edge", [
    ("vnfha.coordinator.pool_state", "vnfha.coordinator.state_machine"),  # the old cycles
    ("vnfha.coordinator.state_data", "vnfha.coordinator.state_machine"),
    ("vnfha.coordinator.decide_pool", "vnfha.coordinator.decide"),
    ("vnfha.coordinator.store.base", "vnfha.coordinator.store.memory"),  # inside a subpackage
])
def test_a_cycle_put_back_breaks_the_acyclic_contract(setup, edge) -> None:
    assert not kept(setup, "acyclic", edge)


@pytest.mark.parametrize("edge", [
    ("vnfha.coordinator.decide", "grpc"),
    ("vnfha.coordinator.state_machine", "time"),
    ("vnfha.agents.lease", "threading"),
    ("vnfha.coordinator.names", "vnfha.coordinator.store.memory"),  # I/O via the product
])
def test_io_in_the_core_breaks_the_pure_core_contract(setup, edge) -> None:
    assert not kept(setup, "pure-core", edge)


@pytest.mark.parametrize("edge", [
    ("vnfha.coordinator.server", "vnfha_lab.labcluster"),
    ("vnfha.agents.main", "vnfha_lab.netlab"),
    ("vnfha.coordinator.cli", "vnfha_lab.demo"),
    ("vnfha.coordinator.server", "vnfha_lab.ports"),
])
def test_a_product_import_of_the_harness_breaks_its_contract(setup, edge) -> None:
    assert not kept(setup, "no-lab-in-product", edge)
