"""``python -m actlab``: the lab's command line (``actlab.lab.cli``)."""

import sys

from actlab.lab.cli import main

if __name__ == "__main__":
    sys.exit(main())
