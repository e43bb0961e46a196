"""Pieces of text generation that do not depend on the inference library: stop sequences and UTF-8."""

from __future__ import annotations

import codecs


class StopMatcher:
    """Finds stop sequences in streamed text without ever emitting part of one.

    Text that could be the start of a stop sequence is held back until it either completes the
    sequence (then it is dropped, with everything after it) or cannot anymore (then it is released).
    """

    def __init__(self, stops: list[str]) -> None:
        self._stops = [s for s in stops if s]
        self._held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """Add generated text; return what can safely be emitted now."""
        if self.stopped:
            return ""
        buffer = self._held + text
        cut = self._earliest_stop(buffer)
        if cut is not None:
            self.stopped = True
            self._held = ""
            return buffer[:cut]
        keep = self._longest_partial_suffix(buffer)
        self._held = buffer[len(buffer) - keep :] if keep else ""
        return buffer[: len(buffer) - keep]

    def flush(self) -> str:
        """Release held-back text at the end of generation."""
        held, self._held = self._held, ""
        return "" if self.stopped else held

    def _earliest_stop(self, buffer: str) -> int | None:
        found = [i for i in (buffer.find(s) for s in self._stops) if i >= 0]
        return min(found) if found else None

    def _longest_partial_suffix(self, buffer: str) -> int:
        """Length of the longest buffer suffix that is a proper prefix of some stop sequence."""
        best = 0
        for stop in self._stops:
            for length in range(min(len(stop) - 1, len(buffer)), best, -1):
                if buffer.endswith(stop[:length]):
                    best = length
                    break
        return best


class Utf8Stream:
    """Decodes token bytes into text, holding back a multi-byte character split across tokens."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> str:
        return self._decoder.decode(data)

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True)
