"""A grammar that crashes llama.cpp's parser is compiled first in the worker's grammar-check helper, so the
crash costs only the request that sent it (the front end bounds grammars; this is for one that slips
through). Real llama.cpp, the real vocabulary, no worker."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.errors import InvalidRequest
from backends.llamacpp.grammar_check import GrammarChecker

MODELS = Path(__file__).resolve().parents[2] / "models"
GGUF = MODELS / "smollm2-135m-instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf"
DEEP = "root ::= " + "(" * 20000 + '"a"' + ")" * 20000  # SIGSEGV in llama.cpp's parser, measured here


@pytest.fixture
def checker() -> Iterator[GrammarChecker]:
    if not GGUF.exists():
        pytest.fail("the default model is not installed: run `make models` (make test does)")
    checker = GrammarChecker(str(GGUF))
    yield checker
    checker.close()


def test_a_good_grammar_passes_and_is_remembered(checker: GrammarChecker) -> None:
    checker.check('root ::= "yes" | "no"')
    checker.close()  # no helper left: a remembered grammar needs none
    checker.check('root ::= "yes" | "no"')


def test_a_grammar_that_does_not_parse_is_a_400(checker: GrammarChecker) -> None:
    with pytest.raises(InvalidRequest, match="does not parse"):
        checker.check("root ::= (")


def test_a_grammar_that_crashes_the_parser_costs_only_its_request(checker: GrammarChecker) -> None:
    with pytest.raises(InvalidRequest, match=re.escape("crashes or stalls llama.cpp's grammar parser")):
        checker.check(DEEP)
    checker.check('root ::= "still fine"')  # a fresh helper answers the next one
