"""Hypothesis strategies the suite shares: values as a YAML or JSON reader decodes them."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

SCALARS = st.none() | st.booleans() | st.integers() | st.text(max_size=20)


def nested(scalars: SearchStrategy = SCALARS, key_size: int = 8, leaves: int = 8) -> SearchStrategy:
    """Scalars, and lists and mappings of them, a few levels deep."""
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=key_size), inner, max_size=3),
        max_leaves=leaves,
    )
