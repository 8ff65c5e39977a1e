"""Machinery the lesson relies on but does not teach: how many threads torch computes with."""
