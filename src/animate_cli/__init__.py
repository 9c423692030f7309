"""everanimate: minute-scale character animation (EverAnimate on Wan2.2-Animate-14B) from the command line."""

__version__ = "0.1.0"
