"""Per-input capture of what the function prints, tagged with the input's index."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable

Emit = Callable[[int, str, str], None]


class InputStream(io.TextIOBase):
    """Stands in for sys.stdout or sys.stderr while inputs run: whole lines go to `emit`
    tagged with the input running now; a partial line waits for its newline or `flush`."""

    def __init__(self, name: str, emit: Emit) -> None:
        self._name = name
        self._emit = emit
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self.index = -1

    @property
    def name(self) -> str:
        return f"<burla {self._name}>"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        with self._lock:
            self._pending.append(text)
            if "\n" in text:
                joined = "".join(self._pending)
                cut = joined.rfind("\n") + 1
                self._pending = [joined[cut:]] if cut < len(joined) else []
                self._emit(self.index, self._name, joined[:cut])
        return len(text)

    def flush(self) -> None:
        if not self._pending:  # flushed after every input: most have printed nothing
            return
        with self._lock:
            if self._pending:
                self._emit(self.index, self._name, "".join(self._pending))
                self._pending = []

    def isatty(self) -> bool:
        return False
