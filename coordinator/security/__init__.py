"""Transport security and authorization for every vnfha gRPC listener and client.

* `tls`: PEM files from config, server credentials reloaded on change, client channels
  re-created on change.
* `identity`: the one vnfha identity a certificate names (SAN URI `vnfha://kind/name`).
* `policy`: the table of which identity may call which RPC on which object.
* `authz`: the server interceptors that apply the table and audit the calls.

See docs/security.md.
"""
