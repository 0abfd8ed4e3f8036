"""hftcore -- the compiled core of hftmm.

Integer-tick L2 order book, Binance message decoding and book synchronisation,
EWMA volatility and order-arrival intensity, Avellaneda-Stoikov and GLFT quoting.
No I/O, no threads, no logging. Prices are int64 ticks, quantities int64 lots,
times int64 nanoseconds inside the core; floats appear only at the edges.

Other Cython projects can ``cimport hftcore.book`` etc.; C code can include the
headers found under :func:`get_include`.
"""
from __future__ import annotations

import os

from hftcore.types import (  # noqa: F401
    ASK,
    BID,
    EV_BBO,
    EV_BOOK_INVALID,
    EV_DEPTH,
    EV_FUNDING,
    EV_SNAPSHOT,
    EV_TRADE,
    EVENT_DTYPE,
    EVF_BEGIN,
    EVF_EMPTY,
    EVF_END,
    FUNDING_RATE_SCALE,
    INVALID_CROSSED,
    INVALID_GAP,
    INVALID_IDS,
    INVALID_RESET,
    NO_ID,
)

__version__ = "0.1.0"


def get_include() -> str:
    """Directory to add to the C include path: it holds ``hftcore/*.h``.

    For Cython, also add the directory *containing* the ``hftcore`` package
    (``os.path.dirname(get_include())`` when installed) so ``cimport hftcore.book``
    finds the ``.pxd`` files.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    installed = os.path.join(here, "include")
    if os.path.isfile(os.path.join(installed, "hftcore", "types.h")):
        return installed
    # running from a source checkout (in-place build): <root>/src/hftcore -> <root>/include
    return os.path.join(os.path.dirname(os.path.dirname(here)), "include")
