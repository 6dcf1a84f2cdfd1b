"""Benchmarks: each module measures a target against its baseline in the same run."""
