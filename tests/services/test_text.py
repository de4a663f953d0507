"""Clause splitting of streamed LLM text (pure)."""

from __future__ import annotations

import random

import pytest

from apipeline.services.local_llm import FEW_SHOT, format_prompt, split_at_stop
from apipeline.services.text import ClauseSplitter

TEXTS = [
    "Two plus two is four. The answer is easy, isn't it? Yes: it is!",
    "the model writes no punctuation at all and goes on and on and on for quite a few words here",
    "Pi is 3.14, roughly; e.g. for circles.\nNext line here.",
    "",
    "   ",
    "One",
]


def _split(text: str, pieces: list[str], **kw: int) -> list[str]:
    splitter = ClauseSplitter(**kw)
    out: list[str] = []
    for piece in pieces:
        out += splitter.push(piece)
    rest = splitter.flush()
    return [*out, rest] if rest else out


def _random_pieces(text: str, rng: random.Random) -> list[str]:
    pieces, i = [], 0
    while i < len(text):
        n = rng.randint(1, 6)
        pieces.append(text[i : i + n])
        i += n
    return pieces


@pytest.mark.parametrize("text", TEXTS)
def test_clauses_keep_every_word_in_order_whatever_the_token_boundaries(text: str) -> None:
    whole = _split(text, [text])
    assert " ".join(whole).split() == text.split()
    rng = random.Random(7)
    for _ in range(50):
        assert _split(text, _random_pieces(text, rng)) == whole


def test_first_clause_is_cut_early_and_punctuation_ends_clauses() -> None:
    clauses = _split(TEXTS[1], [TEXTS[1]], first_max_words=3, max_words=5)
    assert clauses[0] == "the model writes"
    assert all(len(c.split()) <= 5 for c in clauses)
    assert _split(TEXTS[0], [TEXTS[0]]) == [
        "Two plus two is four.",
        "The answer is easy,",
        "isn't it?",
        "Yes:",
        "it is!",
    ]
    # a decimal point or an abbreviation inside a word is not a boundary
    assert _split(TEXTS[2], [TEXTS[2]], first_max_words=20)[0] == "Pi is 3.14,"


def test_nothing_is_emitted_before_a_boundary_or_the_word_limit() -> None:
    splitter = ClauseSplitter(first_max_words=4)
    assert splitter.push("Two plus") == []
    assert splitter.push(" two") == []
    assert splitter.push(" is") == []  # the fourth word may still grow
    assert splitter.push(" four") == ["Two plus two is"]
    assert splitter.flush() == "four"


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="first_max_words"):
        ClauseSplitter(first_max_words=0)


def test_stop_sequences_cut_and_hold_back_partial_matches() -> None:
    assert split_at_stop("Four.\nUser: next", ["\n", "User:"]) == ("Four.", True, 0)
    assert split_at_stop("Four. Us", ["User:"]) == ("Four. ", False, 2)
    assert split_at_stop("Four", ["User:"]) == ("Four", False, 0)


def test_prompt_is_a_few_shot_dialogue_ending_with_the_assistant_turn() -> None:
    prompt = format_prompt(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi\nthere"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "what is two plus two"},
        ]
    )
    lines = prompt.split("\n")
    assert lines[0] == "Be brief."
    assert lines[-3:] == ["Assistant: Hello.", "User: what is two plus two", "Assistant:"]
    assert "User: hi there" in lines  # a line break inside a message would end the turn
    assert f"User: {FEW_SHOT[0][0]}" in lines
