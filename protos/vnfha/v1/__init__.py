"""Generated protobuf/gRPC code for vnfha.v1. Regenerate with `python protos/generate.py`."""
