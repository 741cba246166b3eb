"""Benchmarks of renyi_info against naive research-code references (see benchmarks/README.md)."""
