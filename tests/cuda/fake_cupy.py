"""A CuPy-shaped stand-in backed by numpy, for running the cuda backend's host code under numba's
CUDA simulator (tests only).

It provides just what gpudedup's host code uses (``gpudedup/backend.py`` ``_cupy_pipeline`` and
``Backend``, the cuda branches of ``hashing.py`` and ``search.py``, ``kernels/cuda.py``
``_stream_of``), and it is as strict as CuPy where host code could go wrong unnoticed:

* :class:`ndarray` is *not* a numpy subclass, so ``isinstance(x, np.ndarray)`` is False as for
  CuPy; ``np.asarray(x)`` raises TypeError (CuPy forbids implicit device-to-host copies), numpy
  functions and ufuncs on it raise TypeError, and mixing it with a numpy array in an operator or
  an index raises TypeError. ``type(x).__module__`` is ``"cupy"``, so ``checks.is_cupy`` sees
  a CuPy array.
* Streams keep order the way a non-blocking CUDA stream does, as far as the host can get it
  wrong: ``ndarray.set(pinned, stream=s)`` snapshots the pinned bytes, and ``s.synchronize()``
  raises :class:`HazardError` if the host changed them before the copy was known to be done;
  ``.get()`` on an array last written on another stream that was not synchronised since raises
  :class:`HazardError` too, and so does a kernel launched on one stream that reads an array
  last written on another, unsynchronised one (non-blocking streams do not wait for the null
  stream: constants uploaded there must be waited for before kernels on a pipeline stream
  read them).
* ``cuda.runtime.memGetInfo()`` returns :data:`state` ``.free`` / ``.total`` (set them to shrink
  the memory budget); ``state`` also records pinned allocations, ``set`` calls and launches.

The simulator takes numpy arrays only: :func:`install` adds an argument extension to every
kernel of ``gpudedup.kernels.cuda`` that hands the kernel the fake's numpy buffer (a view, so
the kernel's writes land in the fake array), and gives the simulator's ``numba.cuda`` an
``external_stream`` (it has none), recording the stream each launch ran on.
"""

from __future__ import annotations

import itertools
import operator
import sys
import types
from dataclasses import dataclass, field

import numpy as np
from numpy import (  # noqa: F401 - dtypes of the array module, as cupy exposes them
    bool_,
    float16,
    float32,
    float64,
    int8,
    int16,
    int32,
    int64,
    uint8,
    uint16,
    uint32,
    uint64,
)

__version__ = "0.0-fake"


class HazardError(AssertionError):
    """Host code raced an asynchronous stream (see the module docstring)."""


@dataclass
class State:
    """What the fake records, and the device memory it reports."""

    free: int = 16 << 30
    total: int = 16 << 30
    device_count: int = 1
    pinned_allocs: list[int] = field(default_factory=list)
    #: (stream ptr, nbytes) of every ndarray.set
    sets: list[tuple[int, int]] = field(default_factory=list)
    #: (kernel name, stream ptr) of every launch
    launches: list[tuple[str, int]] = field(default_factory=list)
    #: ptr of every stream synchronised, in order
    syncs: list[int] = field(default_factory=list)
    streams: list[Stream] = field(default_factory=list)


state = State()
_ptrs = itertools.count(0x1000, 0x100)


def reset() -> State:
    """A fresh :data:`state` (and a fresh null stream as the current one)."""
    global state
    state = State()
    _current[:] = [_NULL]
    return state


# --------------------------------------------------------------------------------- streams


class Stream:
    """``cupy.cuda.Stream``: a context manager that makes it current; ``synchronize``; ``ptr``."""

    def __init__(self, null: bool = False, non_blocking: bool = False, ptds: bool = False):
        self.ptr = 0 if null else next(_ptrs)
        self.non_blocking = non_blocking
        self.dirty = False
        self._copies: list[tuple[np.ndarray, np.ndarray]] = []  # (pinned source, snapshot)
        if not null:
            state.streams.append(self)

    def __enter__(self):
        _current.append(self)
        return self

    def __exit__(self, *exc):
        _current.pop()
        return False

    def synchronize(self) -> None:
        copies, self._copies = self._copies, []
        self.dirty = False
        state.syncs.append(self.ptr)
        for source, snapshot in copies:
            if not np.array_equal(source.view(np.uint8), snapshot.view(np.uint8)):
                raise HazardError(f"pinned memory of a pending copy on stream {self.ptr:#x} "
                                  "was overwritten before the stream was synchronised")

    def __repr__(self):
        return f"<fake cupy Stream {self.ptr:#x}>"


_NULL = Stream(null=True)
_current: list[Stream] = [_NULL]


def get_current_stream() -> Stream:
    return _current[-1]


def _stream_arg(stream) -> Stream:
    return get_current_stream() if stream is None else stream


class PinnedMemory(bytearray):
    """What ``alloc_pinned_memory`` returns: a buffer ``np.frombuffer`` can view."""


def alloc_pinned_memory(nbytes: int) -> PinnedMemory:
    state.pinned_allocs.append(int(nbytes))
    return PinnedMemory(int(nbytes))


class _Runtime:
    @staticmethod
    def memGetInfo():  # noqa: N802 - CuPy's name
        return state.free, state.total

    @staticmethod
    def getDeviceCount():  # noqa: N802 - CuPy's name
        return state.device_count

    @staticmethod
    def deviceSynchronize():  # noqa: N802 - CuPy's name
        for s in state.streams:
            s.synchronize()


cuda = types.ModuleType("cupy.cuda")
cuda.Stream = Stream
cuda.get_current_stream = get_current_stream
cuda.alloc_pinned_memory = alloc_pinned_memory
cuda.runtime = _Runtime()


# ---------------------------------------------------------------------------------- arrays


def _unwrap(x, what: str, host_ok: bool = False):
    """The numpy value behind ``x``; numpy arrays are refused where CuPy refuses them (CuPy
    takes them as indices and as values assigned into an array, copying them over)."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, np.ndarray) and not host_ok:
        raise TypeError(f"fake cupy: a numpy.ndarray {what} (CuPy needs a cupy.ndarray here; "
                        "use cupy.asarray)")
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v, what, host_ok) for v in x)
    return x


def _wrap(value, parent=None):
    # a view keeps the stream that wrote its parent's memory; anything new is written now
    if isinstance(value, (np.ndarray, np.generic)):
        out = ndarray(np.asarray(value) if isinstance(value, np.generic) else value)
        if parent is not None and np.shares_memory(out._a, parent._a):
            out._stream = parent._stream
        else:
            out._touch()
        return out
    if isinstance(value, tuple):
        return tuple(_wrap(v, parent) for v in value)
    return value


class ndarray:  # noqa: N801 - CuPy's name
    """``cupy.ndarray`` backed by a numpy array (``_a``; views share it like device views)."""

    __module__ = "cupy"
    __array_ufunc__ = None  # numpy operators defer to ours, which refuse numpy operands

    def __init__(self, data: np.ndarray):
        self._a = data
        self._stream = get_current_stream()

    def _touch(self):
        # written by work queued on the current stream
        self._stream = get_current_stream()
        self._stream.dirty = True

    # --- what is and is not allowed across the host/device boundary
    def __array__(self, *args, **kwargs):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use "
                        "`.get()` to construct a NumPy array explicitly.")

    def __array_function__(self, func, types, args, kwargs):
        return NotImplemented

    def get(self, stream=None, order="C", out=None):
        s = _stream_arg(stream)
        if self._stream is not s and self._stream.dirty:
            raise HazardError(f"get() of an array written on {self._stream!r}, which was not "
                              f"synchronised, from {s!r}")
        if self._stream is s and s.dirty:
            s.synchronize()  # get() waits for its own stream
        return np.array(self._a, copy=True)

    def set(self, arr, stream=None):
        if not isinstance(arr, np.ndarray):
            raise TypeError("fake cupy: set() takes a numpy array")
        if arr.shape != self.shape or arr.dtype != self.dtype:
            raise ValueError(f"fake cupy: set() of {arr.shape} {arr.dtype} into {self.shape} "
                             f"{self.dtype}")
        s = _stream_arg(stream)
        s._copies.append((arr, arr.copy()))
        s.dirty = True
        state.sets.append((s.ptr, int(arr.nbytes)))
        self._stream = s
        np.copyto(self._a, arr)

    # --- attributes
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    itemsize = property(lambda self: self._a.itemsize)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: _wrap(self._a.T, self))

    def __len__(self):
        return len(self._a)

    def __repr__(self):
        return f"fake_cupy.ndarray({self._a!r})"

    # --- scalars (CuPy syncs and converts 0-d and one-element arrays)
    def __int__(self):
        return int(self._a)

    def __float__(self):
        return float(self._a)

    def __bool__(self):
        return bool(self._a)

    def __index__(self):
        return operator.index(self._a.item())

    def item(self):
        return self._a.item()

    def tolist(self):
        return self._a.tolist()

    # --- indexing
    def __getitem__(self, key):
        return _wrap(self._a[_unwrap(key, "index", host_ok=True)], self)

    def __setitem__(self, key, value):
        self._a[_unwrap(key, "index", host_ok=True)] = _unwrap(value, "value", host_ok=True)
        self._touch()

    def __iter__(self):
        return (self[k] for k in range(len(self)))

    # --- methods returning arrays
    def _method(name):  # noqa: N805 - builds the methods below
        def method(self, *args, **kwargs):
            return _wrap(getattr(self._a, name)(*_unwrap(args, "argument"),
                                                **{k: _unwrap(v, "argument")
                                                   for k, v in kwargs.items()}), self)
        method.__name__ = name
        return method

    for _name in ("reshape", "view", "astype", "any", "all", "copy", "ravel", "sum", "max",
                  "min", "argsort", "transpose", "squeeze", "nonzero", "fill", "cumsum"):
        locals()[_name] = _method(_name)

    # --- operators: fake with fake, or fake with a Python/numpy scalar
    def _binary(op, reflected=False):  # noqa: N805
        def method(self, other):
            other = _unwrap(other, "operand")
            return _wrap(op(other, self._a) if reflected else op(self._a, other))
        return method

    for _name, _op in (("add", operator.add), ("sub", operator.sub), ("mul", operator.mul),
                       ("floordiv", operator.floordiv), ("truediv", operator.truediv),
                       ("mod", operator.mod), ("and", operator.and_), ("or", operator.or_),
                       ("xor", operator.xor), ("lshift", operator.lshift),
                       ("rshift", operator.rshift), ("pow", operator.pow)):
        locals()[f"__{_name}__"] = _binary(_op)
        locals()[f"__r{_name}__"] = _binary(_op, reflected=True)
    for _name, _op in (("eq", operator.eq), ("ne", operator.ne), ("lt", operator.lt),
                       ("le", operator.le), ("gt", operator.gt), ("ge", operator.ge)):
        locals()[f"__{_name}__"] = _binary(_op)
    del _name, _op
    __hash__ = None

    def __invert__(self):
        return _wrap(~self._a)

    def __neg__(self):
        return _wrap(-self._a)

    def __abs__(self):
        return _wrap(abs(self._a))

    def _inplace(op):  # noqa: N805
        def method(self, other):
            op(self._a, _unwrap(other, "operand"))
            self._touch()
            return self
        return method

    __iadd__ = _inplace(operator.iadd)
    __isub__ = _inplace(operator.isub)
    __ior__ = _inplace(operator.ior)
    __iand__ = _inplace(operator.iand)
    __ixor__ = _inplace(operator.ixor)
    del _method, _binary, _inplace


# ------------------------------------------------------------------------ module functions


def asarray(a, dtype=None, order=None):
    """A device array: ``a`` itself if it is one already (of that dtype), else a copy."""
    if isinstance(a, ndarray):
        return a if dtype is None or np.dtype(dtype) == a.dtype else a.astype(dtype)
    return _wrap(np.array(a, dtype=dtype, order=order or "K", copy=True))


def array(a, dtype=None, copy=True, order="K", ndmin=0):
    if isinstance(a, ndarray):
        a = a._a
    return _wrap(np.array(a, dtype=dtype, copy=True, order=order, ndmin=ndmin))


def ascontiguousarray(a, dtype=None):
    if not isinstance(a, ndarray):
        raise TypeError("fake cupy: ascontiguousarray takes a cupy.ndarray")
    return _wrap(np.ascontiguousarray(a._a, dtype=dtype), a)


def _device_function(name):
    fn = getattr(np, name)

    def function(*args, **kwargs):
        args = _unwrap(args, f"argument of cupy.{name}")
        kwargs = {k: _unwrap(v, f"argument of cupy.{name}") for k, v in kwargs.items()}
        return _wrap(fn(*args, **kwargs))

    function.__name__ = name
    return function


for _name in ("empty", "zeros", "ones", "full", "arange", "empty_like", "zeros_like",
              "concatenate", "stack", "lexsort", "flatnonzero", "nonzero", "where",
              "isfinite", "isnan", "sort", "argsort", "unique", "cumsum", "bitwise_count",
              "minimum", "maximum", "repeat", "tile", "copyto"):
    globals()[_name] = _device_function(_name)
del _name


def asnumpy(a, stream=None):
    return a.get(stream=stream) if isinstance(a, ndarray) else np.asarray(a)


# ------------------------------------------------------------------------ simulator glue


class _UnwrapForSimulator:
    """numba.cuda simulator argument extension: a fake CuPy array enters a kernel as its numpy
    buffer (the simulator copies it in and writes it back after the kernel, into that buffer).
    """

    def __init__(self, name: str):
        self.name = name

    def prepare_args(self, ty, val, stream=0, retr=None):
        if isinstance(val, ndarray):
            current = get_current_stream()
            if val._stream is not current and val._stream.dirty:
                raise HazardError(f"kernel {self.name} on {current!r} reads an array last "
                                  f"written on {val._stream!r}, which was not synchronised")
            # a kernel's outputs are allocated on the stream it runs on (the host code does),
            # so they carry it already; inputs keep the stream that wrote them
            current.dirty = True
            return ty, val._a
        return ty, val


def install(monkeypatch) -> State:
    """Make ``import cupy`` give this module and let the simulated kernels take its arrays, for
    the duration of one test (``monkeypatch`` undoes it). Returns a fresh :data:`state`."""
    from gpudedup.kernels import cuda as gk
    from numba import cuda as numba_cuda

    from gpudedup import backend as backends

    this = sys.modules[__name__]
    monkeypatch.setitem(sys.modules, "cupy", this)
    monkeypatch.setitem(sys.modules, "cupy.cuda", cuda)
    # the real-GPU branch of the backend: CuPy as the array module
    monkeypatch.setattr(backends, "cuda_simulated", lambda: False)
    monkeypatch.setattr(backends, "cuda_available", lambda: True)
    for name in gk._GEOMETRY:
        kernel = getattr(gk, name)
        monkeypatch.setattr(kernel, "extensions",
                            [*kernel.extensions, _UnwrapForSimulator(name)])
    monkeypatch.setattr(gk, "_streams", {})

    def external_stream(ptr):
        return _ExternalStream(ptr)

    monkeypatch.setattr(numba_cuda, "external_stream", external_stream, raising=False)
    launch = gk.launch

    def recording_launch(kernel, name, items, *args):
        stream = gk._stream_of(args)
        state.launches.append((name, getattr(stream, "ptr", None)))
        return launch(kernel, name, items, *args)

    monkeypatch.setattr(gk, "launch", recording_launch)
    return reset()


@dataclass(frozen=True)
class _ExternalStream:
    """What the simulator's missing ``cuda.external_stream(ptr)`` returns here."""

    ptr: int
