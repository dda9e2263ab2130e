"""The load-balancer side of active-active groups: keep HAProxy in step with the pool."""
