"""merge_patch against RFC 7386: null removes, objects merge, everything else replaces."""

from __future__ import annotations

from typing import Any

import pytest

from shared.merge_patch import merge_patch


@pytest.mark.parametrize(
    ("target", "patch", "result"),
    [
        # RFC 7386, Appendix A, every example.
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"a": "foo"}, "bar", "bar"),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_rfc_7386_examples(target: Any, patch: Any, result: Any) -> None:
    assert merge_patch(target, patch) == result


def test_a_nested_object_merges_key_by_key_and_keeps_what_the_patch_does_not_name() -> None:
    target = {"action": {"type": "Http", "request": {"uri": "https://a/", "method": "GET"}}}
    patch = {"action": {"request": {"method": "POST", "headers": {"x": "1"}}}}
    assert merge_patch(target, patch) == {
        "action": {
            "type": "Http",
            "request": {"uri": "https://a/", "method": "POST", "headers": {"x": "1"}},
        }
    }


def test_null_for_a_key_the_target_lacks_changes_nothing() -> None:
    assert merge_patch({"a": 1}, {"missing": None}) == {"a": 1}


def test_arrays_are_replaced_whole_not_merged() -> None:
    target = {"recurrence": {"schedule": {"hours": [1, 2, 3]}}}
    assert merge_patch(target, {"recurrence": {"schedule": {"hours": [9]}}}) == {
        "recurrence": {"schedule": {"hours": [9]}}
    }


def test_the_target_is_not_changed() -> None:
    target = {"a": {"b": 1}}
    merge_patch(target, {"a": {"b": None, "c": 2}})
    assert target == {"a": {"b": 1}}
