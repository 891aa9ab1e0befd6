"""The original's ``lago.utils``: the helpers test suites import (``from lago import utils``).

Threads (``invoke_in_parallel``, ``VectorThread``, ``func_vector``) and ``CommandStatus`` keep
the original's code and semantics: ``CommandStatus`` is a ``(code, out, err)`` namedtuple, *true
when the command failed* (``if ret: raise ...``), whose ``out``/``err`` are
:class:`CommandOutput`: text, as the seed's SDK example shows them, that also has the last
original's bytes (``res.out.decode('utf-8')``, ``bytes(res.out)``).
Commands run through lago's Rust library (``run_command``, ``get_qemu_info``).
"""

import collections
import functools
import logging
import os
import shutil
import sys
import tempfile
import threading
import queue
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

from ._lago import LagoError, LagoUserError, qemu_img_info, run_interactive_shell, run_shell

LOGGER = logging.getLogger(__name__)

#: The original's base exception (``except lago.utils.LagoException``).
LagoException = LagoError
#: The original's exception for the user's mistakes.
LagoUserException = LagoUserError


class LagoInitException(LagoException):
    """``init`` failed."""


class TimerException(Exception):
    """A timeout was reached."""


_BYTES_LIKE = (bytes, bytearray, memoryview)


def _bytes_operand(value: Any) -> bool:
    """Whether a search's operand is bytes (or, for ``startswith``/``endswith``, a tuple of them)."""
    if isinstance(value, tuple):
        return bool(value) and all(isinstance(v, _BYTES_LIKE) for v in value)
    return isinstance(value, _BYTES_LIKE)


def _search(name: str) -> Callable[..., Any]:
    """``str.<name>`` on the text; ``bytes.<name>`` on the raw output when the operand is bytes."""
    on_text, on_raw = getattr(str, name), getattr(bytes, name)

    def method(self: "CommandOutput", sub: Any, *args: Any) -> Any:
        if _bytes_operand(sub):
            return on_raw(self._raw, sub, *args)
        return on_text(self, sub, *args)

    method.__name__, method.__qualname__ = name, "CommandOutput." + name
    method.__doc__ = "``str.%s``; with a bytes operand, ``bytes.%s`` of the raw output." % (name, name)
    return method


def _lossless(value: Any) -> Any:
    """A pieces method's argument in the lossless view (bytes and outputs decoded with surrogateescape)."""
    if isinstance(value, CommandOutput):
        return value._raw.decode("utf-8", "surrogateescape")
    if isinstance(value, _BYTES_LIKE):
        return bytes(value).decode("utf-8", "surrogateescape")
    return value


def _pieces(name: str) -> Callable[..., Any]:
    """``str.<name>`` whose results are outputs too, cut from the raw output."""
    on_text = getattr(str, name)

    def method(self: "CommandOutput", *args: Any, **kwargs: Any) -> Any:
        result = on_text(self._raw.decode("utf-8", "surrogateescape"), *map(_lossless, args),
                         **{k: _lossless(v) for k, v in kwargs.items()})
        if isinstance(result, str):
            return CommandOutput(result)
        return type(result)(CommandOutput(piece) for piece in result)

    method.__name__, method.__qualname__ = name, "CommandOutput." + name
    method.__doc__ = ("``str.%s``, giving :class:`CommandOutput` pieces of the raw output (so ``out.%s()`` "
                      "also compares with bytes and decodes); bytes arguments are taken as UTF-8." % (name, name))
    return method


class CommandOutput(str):
    """A command's standard output (or error) as both kinds of suites read it.

    It *is* a ``str``, the output decoded as UTF-8 with each invalid sequence replaced by U+FFFD
    (the seed's SDK example: ``res.out == 'vm01.lago.local\\n'``, ``'lago' in res.out``,
    ``repr`` ``'vm01.lago.local\\n'``), and it keeps the raw bytes, for suites of the last
    original, which had bytes: ``decode(encoding='utf-8', errors='strict')`` is ``bytes.decode``
    of them (raising on invalid UTF-8 as bytes would), ``bytes(out)`` gives them, and ``==``,
    ``!=``, ``in``, ``count``, ``find``, ``rfind``, ``index``, ``rindex``, ``startswith`` and
    ``endswith`` with a bytes operand compare or search them. ``strip``, ``lstrip``, ``rstrip``,
    ``split``, ``rsplit``, ``splitlines``, ``partition`` and ``rpartition`` give outputs too, cut
    from the raw bytes (``out.strip() == b'5'``, ``out.strip().decode()``); every other ``str``
    operation gives a plain ``str``. It hashes as its text; pickles and copies keep the raw
    bytes. ``CommandOutput(b"...")``, or ``CommandOutput("...")`` for a text (encoded as UTF-8,
    lone surrogates as ``surrogateescape`` makes them)."""

    __slots__ = ("_raw",)
    _raw: bytes

    def __new__(cls, data: Any = b"") -> "CommandOutput":
        if isinstance(data, CommandOutput):
            raw = data._raw
        elif isinstance(data, _BYTES_LIKE):
            raw = bytes(data)
        elif isinstance(data, str):
            try:
                raw = data.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                raw = data.encode("utf-8", "surrogatepass")
        else:
            raise TypeError("CommandOutput takes bytes or str, not %s" % type(data).__name__)
        self = super().__new__(cls, raw.decode("utf-8", "replace"))
        self._raw = raw
        return self

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        """The raw output decoded, as ``bytes.decode`` decodes it (the last original's ``out``)."""
        return self._raw.decode(encoding, errors)

    def __bytes__(self) -> bytes:
        return self._raw

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CommandOutput):
            return self._raw == other._raw
        if isinstance(other, _BYTES_LIKE):
            return self._raw == other
        return str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = str.__hash__

    def __contains__(self, item: object) -> bool:
        if isinstance(item, _BYTES_LIKE):
            return item in self._raw
        return str.__contains__(self, item)  # type: ignore[operator]

    def __reduce__(self) -> Any:
        return (CommandOutput, (self._raw,))

    count = _search("count")
    find = _search("find")
    rfind = _search("rfind")
    index = _search("index")
    rindex = _search("rindex")
    startswith = _search("startswith")
    endswith = _search("endswith")

    strip = _pieces("strip")
    lstrip = _pieces("lstrip")
    rstrip = _pieces("rstrip")
    split = _pieces("split")
    rsplit = _pieces("rsplit")
    splitlines = _pieces("splitlines")
    partition = _pieces("partition")
    rpartition = _pieces("rpartition")


def _output(value: Any) -> Any:
    """A ``CommandStatus`` field as a :class:`CommandOutput` (``None`` and others as they are)."""
    if isinstance(value, CommandOutput) or not isinstance(value, _BYTES_LIKE + (str,)):
        return value
    return CommandOutput(value)


def _stdin(data: Any) -> Any:
    """A command's standard input as bytes: an output's raw bytes (another command's output goes
    on as it came), a text as UTF-8; bytes and ``None`` as they are."""
    if isinstance(data, CommandOutput):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8")
    return data


_CommandStatus = collections.namedtuple("CommandStatus", ("code", "out", "err"))


class CommandStatus(_CommandStatus):
    """The outcome of a command: ``code``, ``out`` and ``err``, the two outputs as
    :class:`CommandOutput` (text that also decodes as bytes; ``None`` stays ``None``). Its truth
    value is ``bool(code)``: true when the command *failed*, as in the original."""

    def __new__(cls, code: Any, out: Any, err: Any) -> "CommandStatus":
        return super().__new__(cls, code, _output(out), _output(err))

    @classmethod
    def _make(cls, iterable: Iterable[Any]) -> "CommandStatus":
        return cls(*iterable)

    def __bool__(self) -> bool:
        return bool(self.code)

    __nonzero__ = __bool__


def _ret_via_queue(func: Callable[[], Any], q: "queue.Queue[Dict[str, Any]]") -> None:
    try:
        q.put({"return": func()})
    except Exception:
        LOGGER.debug("Error while running thread %s", threading.current_thread().name, exc_info=True)
        q.put({"exception": sys.exc_info()})


def func_vector(target: Callable[..., Any], args_sequence: Iterable[Sequence[Any]]) -> List[Callable[[], Any]]:
    """One callable per argument tuple: ``target(*args)``."""
    return [functools.partial(target, *args) for args in args_sequence]


class VectorThread:
    """Runs callables on threads of their own: ``start_all()``, then ``join_all()`` returns
    their results in order (re-raising the first exception unless ``raise_exceptions=False``)."""

    def __init__(self, targets: Sequence[Callable[[], Any]]) -> None:
        self.targets = targets
        self.results: Optional[List[Dict[str, Any]]] = None

    def start_all(self) -> None:
        self.thread_handles = []
        for target in self.targets:
            q: "queue.Queue[Dict[str, Any]]" = queue.Queue()
            t = threading.Thread(target=_ret_via_queue, args=(target, q))
            self.thread_handles.append((t, q))
            t.start()

    def join_all(self, raise_exceptions: bool = True) -> List[Any]:
        if self.results:
            return self.results
        for t, _ in self.thread_handles:
            t.join()
        self.results = [q.get() for _, q in self.thread_handles]
        if raise_exceptions:
            for result in self.results:
                if "exception" in result:
                    _, value, tb = result["exception"]
                    raise value.with_traceback(tb)
        return [x.get("return", None) for x in self.results]


def invoke_in_parallel(func: Callable[..., Any], *args_sequences: Sequence[Any]) -> List[Any]:
    """``func`` on each tuple of the zipped sequences, each call on its own thread."""
    vt = VectorThread(func_vector(func, list(zip(*args_sequences))))
    vt.start_all()
    return vt.join_all()


def invoke_different_funcs_in_parallel(*funcs: Callable[[], Any]) -> List[Any]:
    """Each callable on its own thread; their results in order."""
    vt = VectorThread(funcs)
    vt.start_all()
    return vt.join_all()


def _shell_line(command: Sequence[str]) -> str:
    # The original ran ' '.join('"%s"' % arg) through a shell: each argument in double quotes,
    # so `$VAR` and `$(...)` in an argument are expanded, and nothing is split.
    return " ".join('"%s"' % arg for arg in command)


def _environment(env: Optional[Dict[str, str]]) -> List[Any]:
    if env is None:
        return list(os.environ.items())
    merged = dict(env)
    paths = merged.get("PATH", "").split(":") + os.environ.get("PATH", "").split(":")
    merged["PATH"] = ":".join(dict.fromkeys(p for p in paths if p))
    return list(merged.items())


def run_command(command: Sequence[str], input_data: Any = None, out_pipe: Any = None, err_pipe: Any = None,
                env: Optional[Dict[str, str]] = None, **kwargs: Any) -> CommandStatus:
    """Runs ``command`` (a list: the program, then its arguments) and returns its
    ``CommandStatus``. ``input_data`` (str or bytes) is its standard input; ``env``
    its environment (with the caller's ``PATH`` added, as the original did); ``cwd=`` its
    directory. ``out_pipe``/``err_pipe`` are accepted for the original's callers: the output is
    always collected."""
    input_data = _stdin(input_data)
    line = _shell_line(command)
    LOGGER.debug("Run command: %s", line)
    result = run_shell(line, input_data, _environment(env), kwargs.get("cwd"))
    LOGGER.debug("command exit with return code: %d", result.code)
    return result


def run_interactive_command(command: Sequence[str], env: Optional[Dict[str, str]] = None, **kwargs: Any) -> CommandStatus:
    """Runs ``command`` on this process's terminal; ``CommandStatus(code, None, None)``."""
    code = run_interactive_shell(_shell_line(command), _environment(env), kwargs.get("cwd"))
    return CommandStatus(code, None, None)


def service_is_enabled(name: str) -> bool:
    """Whether systemd service ``name`` of this host is enabled."""
    ret, out, _ = run_command(["systemctl", "is-enabled", name])
    return ret == 0 and out.strip() == "enabled"


def get_qemu_info(path: str, backing_chain: bool = False, fail_on_error: bool = True) -> Any:
    """``qemu-img info`` of ``path`` (``$VARS`` in it expanded) as a dict, or a list of them
    with ``backing_chain``. Without ``fail_on_error``, a failure gives ``{}``."""
    try:
        return qemu_img_info(os.path.expandvars(path), backing_chain)
    except LagoError:
        if fail_on_error:
            raise
        return {}


def ipv4_to_mac(ip: str) -> str:
    """The MAC address lago gives the NIC of address ``ip``: ``54:52:`` and the address's bytes."""
    return "54:52:" + ":".join("%02x" % int(part) for part in ip.split("."))


def ver_cmp(ver1: str, ver2: str) -> int:
    """Compares two dotted version strings: -1, 0 or 1."""
    def parts(v: str) -> List[Any]:
        return [int(p) if p.isdigit() else p for p in v.replace("-", ".").split(".")]

    a, b = parts(ver1), parts(ver2)
    for x, y in zip(a, b):
        if x != y:
            try:
                return -1 if x < y else 1
            except TypeError:
                return -1 if str(x) < str(y) else 1
    return (len(a) > len(b)) - (len(a) < len(b))


def deepcopy(original_obj: Any) -> Any:
    """A deep copy of dicts and lists (other values as they are)."""
    if isinstance(original_obj, list):
        return [deepcopy(item) for item in original_obj]
    if isinstance(original_obj, dict):
        return {key: deepcopy(val) for key, val in original_obj.items()}
    return original_obj


class RollbackContext:
    """Records undo steps and plays them back, last first, when the block ends; the first
    exception is remembered and raised again after the rollback (from VDSM, as the original)."""

    def __init__(self, *args: Any) -> None:
        self._finally: List[Any] = []

    def __enter__(self) -> "RollbackContext":
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> bool:
        undo_exc = None
        for undo, args, kwargs in self._finally:
            try:
                undo(*args, **kwargs)
            except Exception as e:
                if undo_exc is None:
                    undo_exc = e
        if exc_type is None and undo_exc is not None:
            raise undo_exc
        return False

    def defer(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._finally.append((func, args, kwargs))

    def prependDefer(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._finally.insert(0, (func, args, kwargs))

    def clear(self) -> None:
        self._finally = []


class TemporaryDirectory:
    """A temporary directory for the ``with`` block, removed after it."""

    def __init__(self, ignore_errors: bool = True) -> None:
        self.path = tempfile.mkdtemp()
        self.ignore_errors = ignore_errors

    def __enter__(self) -> str:
        return self.path

    def __exit__(self, *_: Any) -> None:
        shutil.rmtree(self.path, ignore_errors=self.ignore_errors)


class EggTimer:
    """``elapsed()`` is true once ``timeout`` seconds passed since the ``with`` block began."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.start_time = 0.0

    def __enter__(self) -> "EggTimer":
        import time
        self.start_time = time.time()
        return self

    def __exit__(self, *_: Any) -> None:
        pass

    def elapsed(self) -> bool:
        import time
        return (time.time() - self.start_time) > self.timeout


def in_prefix(prefix_class: Any = None, workdir_class: Any = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The original's decorator for CLI plugin functions: the decorated function gets
    ``prefix=`` (the prefix the global options name: ``--prefix-path``, ``--workdir-path``,
    ``--prefix-name``, else the workdir found from the current directory) and
    ``parent_workdir=``; ``LAGO_PREFIX_PATH`` and ``LAGO_WORKDIR_PATH`` are set.
    ``prefix_class`` (default ``lago.prefix.Prefix``) is called with the prefix's path."""
    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from . import prefix as lago_prefix
            from . import workdir as lago_workdir
            cls = prefix_class or lago_prefix.Prefix
            found = lago_prefix.resolve(kwargs.get("prefix_path"), kwargs.get("workdir_path"),
                                        kwargs.get("prefix_name"))
            kwargs["parent_workdir"] = lago_workdir.Workdir(found.workdir) if found.workdir else None
            kwargs["prefix"] = cls(found.path)
            os.environ["LAGO_PREFIX_PATH"] = found.path
            os.environ["LAGO_WORKDIR_PATH"] = found.workdir or ""
            return func(*args, **kwargs)
        return wrapper
    return decorator


def with_logging(func: Callable[..., Any]) -> Callable[..., Any]:
    """The original's decorator that logged into the prefix's ``logs/lago.log`` (lago's own
    records always go there): calls the function as it is."""
    @functools.wraps(func)
    def wrapper(prefix: Any, *args: Any, **kwargs: Any) -> Any:
        return func(*args, prefix=prefix, **kwargs)
    return wrapper


__all__ = ["LagoException", "LagoUserException", "LagoInitException", "TimerException", "CommandStatus",
           "CommandOutput", "func_vector", "VectorThread", "invoke_in_parallel", "invoke_different_funcs_in_parallel", "run_command",
           "run_interactive_command", "service_is_enabled", "get_qemu_info", "ipv4_to_mac", "ver_cmp", "deepcopy",
           "RollbackContext", "TemporaryDirectory", "EggTimer", "in_prefix", "with_logging"]
