"""backends/text.py: stop sequences in streamed text, and UTF-8 split across tokens."""

from __future__ import annotations

from backends.text import StopMatcher, Utf8Stream


def run(matcher: StopMatcher, pieces: list[str]) -> str:
    return "".join(matcher.feed(p) for p in pieces) + matcher.flush()


def test_stop_sequence_is_never_emitted() -> None:
    assert run(StopMatcher(["END"]), ["hello END"]) == "hello "


def test_text_after_stop_sequence_is_dropped() -> None:
    matcher = StopMatcher(["END"])
    assert matcher.feed("a END b") == "a "
    assert matcher.feed(" more") == ""
    assert matcher.stopped


def test_partial_stop_prefix_is_held_back() -> None:
    matcher = StopMatcher(["END"])
    assert matcher.feed("hello EN") == "hello "


def test_held_prefix_is_released_when_it_cannot_complete_a_stop() -> None:
    matcher = StopMatcher(["END"])
    matcher.feed("hello EN")
    assert matcher.feed("VY") == "ENVY"
    assert not matcher.stopped


def test_stop_split_across_feeds_is_found() -> None:
    matcher = StopMatcher(["<|end|>"])
    emitted = [matcher.feed(p) for p in ["one <", "|en", "d|> two"]]
    assert "".join(emitted) == "one "
    assert matcher.stopped


def test_earliest_of_several_stops_wins() -> None:
    assert run(StopMatcher(["world", "lo"]), ["hello world"]) == "hel"


def test_flush_releases_held_text_at_end_of_generation() -> None:
    matcher = StopMatcher(["END"])
    assert matcher.feed("the E") == "the "
    assert matcher.flush() == "E"


def test_flush_after_stop_emits_nothing() -> None:
    matcher = StopMatcher(["END"])
    matcher.feed("x END y")
    assert matcher.flush() == ""


def test_empty_stop_strings_are_ignored() -> None:
    assert run(StopMatcher(["", "END"]), ["a", "b"]) == "ab"


def test_multibyte_character_split_across_feeds_is_decoded_whole() -> None:
    stream = Utf8Stream()
    data = "é€😀".encode()
    pieces = [stream.feed(data[i : i + 1]) for i in range(len(data))]
    assert "".join(pieces) + stream.flush() == "é€😀"
    assert all(p in ("", "é", "€", "😀") for p in pieces)


def test_truncated_multibyte_character_becomes_replacement_on_flush() -> None:
    stream = Utf8Stream()
    assert stream.feed("😀".encode()[:2]) == ""
    assert stream.flush() == "\ufffd"
