"""Benchmarks of the scheduler on a private in-memory Azurite: `make bench` (python -m bench).

(a) the cost of one timer pass, with and without 100,000 other jobs stored;
(b) the dispatch rate beside what the same Azurite accepts as plain queue sends;
(c) how late 1,000 one-time jobs fire through the real app in devhost.
"""
