"""hpm: an environment hypervisor for plugin-based Python applications.

The pipeline reads registry -> plan -> lock -> installer -> launcher; each step is
one module of this package.
"""

__version__ = "0.1.0"
