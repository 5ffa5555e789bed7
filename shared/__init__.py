"""Code both planes of Portico import: config model, validation, merge, wire messages.

Nothing in this package does I/O or imports :mod:`control_plane` or
:mod:`data_plane`.
"""

from __future__ import annotations

__version__ = "0.1.0"
