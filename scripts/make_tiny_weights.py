"""Write a complete tiny random everanimate model set to DIR, in download-weights' layout.

    python scripts/make_tiny_weights.py DIR

Used by the test-suite, `make demo` (when real weights are missing) and the benchmarks. The
weights are random: the output only proves the pipeline runs, it is not an animation.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/support: not in the package
from support.tiny_models import write_tiny_weights  # noqa: E402

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(write_tiny_weights(Path(sys.argv[1])))
