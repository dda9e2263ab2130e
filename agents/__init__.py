"""vnfha per-VM agent."""
