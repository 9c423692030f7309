"""Write a complete tiny random everanimate model set to DIR, in download-weights' layout.

    python scripts/make_tiny_weights.py DIR

Used by the test-suite, `make demo` (when real weights are missing) and the benchmarks. The
weights are random: the output only proves the pipeline runs, it is not an animation.
"""

import sys
from pathlib import Path

from animate_cli.devtools.tiny_models import write_tiny_weights

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(write_tiny_weights(Path(sys.argv[1])))
