"""Randomized nemesis over a namespace cluster, and its whole-history checker."""
