"""Notebooks run under pytest use quick mode unless told otherwise."""

import os

os.environ.setdefault("ACTLAB_QUICK", "1")
