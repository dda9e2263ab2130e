"""vnfha coordinator: the replicated brain (model, policy, stores, gRPC service)."""
