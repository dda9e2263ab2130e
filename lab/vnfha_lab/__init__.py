"""vnfha's lab harness: clusters of real processes in network namespaces on one host.

Used by `vnfha demo`, the test suite and the benchmarks; never imported by the
product (`.importlinter`, contract "no-lab-in-product"), and shipped as its own
distribution (`lab/pyproject.toml`), so a production install carries none of it.
"""
