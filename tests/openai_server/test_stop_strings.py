"""OpenAI's stop strings on streamed text: cut before the first match, even across pieces."""

from __future__ import annotations

from openai_server.stop_strings import StopStringMatcher


def run(stops: list[str], pieces: list[str]) -> tuple[str, bool]:
    matcher = StopStringMatcher(stops)
    out = "".join(matcher.feed(p) for p in pieces)
    return out + matcher.flush(), matcher.stopped


def test_cut_before_the_first_stop_string():
    assert run(["."], ["Hello world. More"]) == ("Hello world", True)
    assert run(["END", "."], ["a b END c.", "never"]) == ("a b ", True)


def test_a_stop_string_split_across_pieces_is_found_and_never_sent():
    matcher = StopStringMatcher(["\n\nUser:"])
    sent = [matcher.feed(p) for p in ["Answer.\n", "\nUs", "er: next"]]
    assert sent == ["Answer.", "", ""] and matcher.stopped


def test_held_back_text_is_released_when_it_turns_out_not_to_match():
    matcher = StopStringMatcher(["STOP"])
    assert matcher.feed("go ST") == "go "
    assert matcher.feed("ART") == "START"
    assert matcher.feed("ST") == ""
    assert matcher.flush() == "ST" and not matcher.stopped


def test_no_stop_strings_pass_everything():
    assert run([], ["a", "b"]) == ("ab", False)
    assert run([""], ["a"]) == ("a", False)


def test_the_first_of_two_occurrences_ends_the_answer():
    assert run(["."], ["a.b.c"]) == ("a", True)
    assert run(["END"], ["xEND yEND"]) == ("x", True)


def test_a_piece_ending_in_the_start_of_a_stop_string_holds_that_start_back():
    matcher = StopStringMatcher(["abc"])
    assert matcher.feed("xab") == "x"  # "ab" may begin "abc"
    assert matcher.feed("d") == "abd"
    assert matcher.feed("a") == ""
    assert matcher.flush() == "a" and matcher.flush() == ""  # flushed once: nothing held any more
    assert matcher.feed("bc") == "bc"  # after a flush, nothing held back is prepended
