"""Benchmarks: throughput and peak memory of the shipped scenarios (``make bench``)."""
