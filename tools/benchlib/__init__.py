"""Modules of tools/bench (see tools/bench.md)."""
