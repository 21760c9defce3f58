"""The benchmark harness behind `fastrnn bench` and `fastrnn profile`: benchmark points and their
candidates (points.py), interleaved median timing (timing.py), the machine record (machine.py),
peak memory in a fresh process (memory.py), the report writer (report.py) and the sequence-length
profiler (profile.py)."""
