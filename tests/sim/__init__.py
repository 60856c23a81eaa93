"""Deterministic simulation of a playout queue driven by recorded arrival traces."""
