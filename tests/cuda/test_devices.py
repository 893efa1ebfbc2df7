"""A kernel launches on the GPU its CuPy arguments live on, not on numba's current device."""

import contextlib

import numpy as np
from gpudedup.kernels import cuda as gk


class _Device:
    def __init__(self, index):
        self.id = index


class _CupyLike(np.ndarray):
    """A numpy array that says it is CuPy's and lives on a given device."""

    @property
    def device(self):
        return _Device(self._device_index)


_CupyLike.__module__ = "cupy"


def _on_device(values, index):
    arr = np.asarray(values).view(_CupyLike)
    arr._device_index = index
    return arr


def test_launch_switches_to_the_arguments_device(monkeypatch):
    entered = []

    class Gpus:
        def __getitem__(self, index):
            @contextlib.contextmanager
            def context():
                entered.append(index)
                yield
            return context()

    calls = []
    monkeypatch.setattr(gk.cuda, "gpus", Gpus(), raising=False)
    monkeypatch.setattr(gk, "_stream_of", lambda args: 0)
    monkeypatch.setitem(gk._GEOMETRY, "probe", lambda items, args: (1, 1, 0))

    class Kernel:
        def __getitem__(self, config):
            return lambda *args: calls.append(list(entered))

    gk.launch(Kernel(), "probe", 1, _on_device([1, 2], 1))
    assert calls == [[1]]  # launched inside device 1's context
    gk.launch(Kernel(), "probe", 1, _on_device([1, 2], 0))
    assert calls[-1] == [1, 0]
    gk.launch(Kernel(), "probe", 1, np.zeros(2))
    assert entered == [1, 0]  # numpy arguments (the simulator): no switch
