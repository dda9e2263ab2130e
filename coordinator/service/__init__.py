"""gRPC servicers: agent keepalive/watch, admin, peer. I/O only; decisions live in decide."""
