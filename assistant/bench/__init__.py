"""Benchmarks users can run: ``hearth bench {text,latency,accuracy}``. Each writes a JSON report
and a markdown table to ``--out DIR``."""
