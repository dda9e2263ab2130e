"""Network-namespace test hosts: pytest fixtures and capture helpers (core: vnfha_lab.netlab)."""
