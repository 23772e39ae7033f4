"""Masking secret values in job output."""

from __future__ import annotations

from backend.masking import Masker


def test_masker_replaces_every_occurrence() -> None:
    masker = Masker(["hunter2"])
    assert masker.mask("pw=hunter2 again hunter2!") == "pw=**** again ****!"


def test_masker_longest_secret_first() -> None:
    masker = Masker(["abc", "abcdef"])
    assert masker.mask("x abcdef y abc z") == "x **** y **** z"


def test_masker_overlapping_secrets_leave_no_fragment() -> None:
    masker = Masker(["abcdef", "defghi"])
    assert masker.mask("<abcdefghi>") == "<****>"


def test_masker_repeated_adjacent_secret_is_one_mask() -> None:
    assert Masker(["tok"]).mask("toktok tok") == "**** ****"


def test_masker_ignores_empty_and_whitespace_values() -> None:
    masker = Masker(["", "  ", "\n"])
    assert not masker
    assert masker.mask("a b\n") == "a b\n"


def test_masker_masks_short_values() -> None:
    assert Masker(["ab"]).mask("cab") == "c****"


def test_masker_regex_characters_are_literal() -> None:
    assert Masker(["a.b*c"]).mask("axb a.b*c") == "axb ****"


def test_masker_multiline_secret_masks_its_lines() -> None:
    masker = Masker(["-----BEGIN KEY-----\nMIIEsecretbody\nx\n-----END KEY-----"])
    assert list(masker.mask_lines(["MIIEsecretbody", "x", "ok"])) == ["****", "x", "ok"]
    assert masker.mask("k=-----BEGIN KEY-----\nMIIEsecretbody\nx\n-----END KEY-----") == "k=****"


def test_masker_mask_lines_masks_each_line() -> None:
    masker = Masker(["s3cr3t", "t0ken"])
    assert list(masker.mask_lines(["a s3cr3t", "none", "t0ken/s3cr3t"])) == [
        "a ****",
        "none",
        "****/****",
    ]


def test_masker_without_secrets_is_identity() -> None:
    masker = Masker([])
    lines = ["a", "b"]
    assert masker.mask("anything") == "anything"
    assert list(masker.mask_lines(lines)) == lines
