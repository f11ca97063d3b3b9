"""Modules great-expectations imports at start-up but our rules never call, loaded on first use instead.

``import great_expectations`` imports every expectation it ships, and one of them
(``ExpectColumnKlDivergenceToBeLessThan``, with two KS-test metrics) imports ``scipy.stats`` and
``altair`` at module level: about 1.1 of the 3 CPU-s GX's start-up costs on every validate run, spent
although they are only called inside that expectation's methods and renderers, which no rule compiles
to. ``defer`` puts a stand-in module in ``sys.modules`` before GX is imported: GX's ``from scipy import
stats`` binds the stand-in, and the first attribute anyone reads from it (``stats.entropy``, ``from
scipy.stats import norm``, ``import scipy.stats.distributions``) imports the real module and answers
from it, so nothing behaves differently apart from when the import happens.
``tests/validation/test_deferred.py`` pins both: GX's start-up leaves the modules unloaded, and GX's
KL-divergence expectation gives the same result through the stand-in as with the module loaded at
start-up.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types

_lock = threading.Lock()  # defer's look-ups and insertions


class Deferred(types.ModuleType):
    """A stand-in for the module ``__name__``, not imported yet: the first attribute read from it that
    it does not hold imports the module (``sys.modules`` then holds the real one) and is read from it.
    It holds only what introspection reads of every module (``__name__``, ``__spec__``, ``__file__``
    ...), so ``inspect.getmodule`` and the import system's checks do not load it."""

    def __getattr__(self, attr: str):
        return getattr(_load(self), attr)


def _load(stand_in: Deferred) -> types.ModuleType:
    # No lock of ours around the import: the import system's lock per module already makes a second
    # thread wait for the first one's import, and a lock held across an import could deadlock with it.
    real = stand_in.__dict__.get("_deferred_real")
    if real is None:
        name = stand_in.__name__
        if sys.modules.get(name) is stand_in:
            sys.modules.pop(name, None)
        real = importlib.import_module(name)
        stand_in.__dict__["_deferred_real"] = real
    return real


def defer(*names: str) -> None:
    """A ``Deferred`` stand-in in ``sys.modules`` for each of ``names`` not imported yet. A module that is
    not installed gets none: importing it then fails where it always did."""
    with _lock:
        for name in names:
            if name in sys.modules:
                continue
            try:
                spec = importlib.util.find_spec(name)  # imports the parent package (scipy's is 4 ms)
            except ImportError:
                continue
            if spec is None:
                continue
            stand_in = Deferred(name)
            stand_in.__spec__, stand_in.__loader__, stand_in.__file__ = spec, spec.loader, spec.origin
            stand_in.__package__ = spec.parent
            sys.modules[name] = stand_in
