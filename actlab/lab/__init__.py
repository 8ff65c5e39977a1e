"""The lab: what serves experiments around the lesson, and is never imported by it.

Run records and their files (``runs``), training runs that are kept and reused (``train``),
comparisons over seeds (``compare``), grids of comparisons (``grid``), the shipped reference
networks (``references``) and the command line (``cli``).
"""

from actlab.lab.compare import compare_activations, load_results
from actlab.lab.train import train_model

__all__ = ["compare_activations", "load_results", "train_model"]
