"""Benchmarks of Portico's proxy path, config propagation and control plane."""
