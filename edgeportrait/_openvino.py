"""Importing OpenVINO without its model-conversion tools.

``import openvino`` also imports ``openvino.tools.ovc`` (``convert_model``),
which pulls in telemetry, ``urllib``/``ssl`` and ``numpy.ma``: measured here
(``python -X importtime``) about 0.1 s of the 0.17 s the import takes. The
runtime (read, compile, infer) never uses it, and start-up is most of a
one-photo ``process``. openvino's ``__init__`` imports it inside
``try/except ImportError``, so it is skipped by marking it absent for the
duration of that import; the mark is removed afterwards, so an explicit
``import openvino.tools.ovc`` later (the model tool chain) still works.
"""

from __future__ import annotations

import sys
import threading
from types import ModuleType

CONVERTER = "openvino.tools.ovc"
_lock = threading.Lock()


def import_openvino() -> ModuleType:
    """``openvino``, imported without ``openvino.tools.ovc`` if it is not imported yet."""
    with _lock:
        loaded = sys.modules.get("openvino")
        if loaded is not None:
            return loaded
        marked = CONVERTER not in sys.modules
        if marked:
            sys.modules[CONVERTER] = None  # type: ignore[assignment]  # "import fails": the documented way
        try:
            import openvino
        finally:
            if marked and sys.modules.get(CONVERTER, 0) is None:
                del sys.modules[CONVERTER]
        return openvino
