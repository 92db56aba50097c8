"""ferbench: a plugin-based model zoo and benchmark harness for facial emotion recognition.

Plugins import :data:`hookimpl` to mark their hook implementations; see :mod:`ferbench.hookspecs`.
"""

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("ferbench")
"""Marker for plugin hook implementations: ``@ferbench.hookimpl``."""

__all__ = ["__version__", "hookimpl"]
