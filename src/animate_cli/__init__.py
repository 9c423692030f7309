"""everanimate: minute-scale character animation (EverAnimate on Wan2.2-Animate-14B) from the command line and Python.

    from animate_cli import Animator      # the models loaded once, many videos (runner/animator.py)

`import animate_cli` imports no torch: `Animator` is loaded on first use.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from animate_cli.runner.animator import Animator

__version__ = "0.1.0"

__all__ = ["Animator", "__version__"]


def __getattr__(name: str):
    if name == "Animator":
        from animate_cli.runner.animator import Animator

        return Animator
    raise AttributeError(f"module 'animate_cli' has no attribute {name!r}")
