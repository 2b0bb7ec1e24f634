"""provider_rke2.core.record against dataclasses, which it stands in for: the same classes,
declared the same way, behave the same wherever the provider relies on them."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, List, Tuple

import pytest

from provider_rke2.core.record import Factory, FrozenError, as_dict, record, replace


@record
class Point:
    """A record with a default and a made-anew default."""

    x: int
    y: int = 0
    tags: List[str] = Factory(list)
    kind: ClassVar[str] = "point"


@dataclasses.dataclass(frozen=True)
class DataPoint:
    """The same, as a dataclass."""

    x: int
    y: int = 0
    tags: List[str] = dataclasses.field(default_factory=list)
    kind: ClassVar[str] = "point"


def test_fields_defaults_and_factories_as_a_dataclass_takes_them():
    assert (Point(1).x, Point(1).y, Point(1).tags) == (1, 0, [])
    assert Point(1, 2) == Point(x=1, y=2) == Point(y=2, x=1)
    assert Point(1).tags is not Point(1).tags, "a new list for each instance"
    assert Point.__record_fields__ == tuple(f.name for f in dataclasses.fields(DataPoint))
    assert Point.kind == "point"


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {}, "missing required argument 'x'"),
        ((1, 2, [], 4), {}, "takes 3 positional arguments but 4 were given"),
        ((1,), {"z": 1}, "unexpected keyword argument 'z'"),
        ((1,), {"x": 2}, "multiple values for argument 'x'"),
    ],
)
def test_wrong_arguments_are_type_errors(args, kwargs, message):
    with pytest.raises(TypeError, match=message):
        Point(*args, **kwargs)
    with pytest.raises(TypeError):
        DataPoint(*args, **kwargs)


def test_frozen_records_refuse_change_and_hash_compare_and_print_as_dataclasses_do():
    point, data = Point(1, 2, ["a"]), DataPoint(1, 2, ["a"])
    with pytest.raises(FrozenError):
        point.x = 3
    with pytest.raises(AttributeError):
        del point.y
    assert repr(point) == repr(data).replace("DataPoint", "Point")
    assert point != data and point != (1, 2, ["a"]), "only the same class compares equal"
    assert hash(Point(1, 2, ())) == hash(Point(1, 2, ())) and len({Point(1, 2, ()), Point(1, 2, ())}) == 1


def test_ordered_records_sort_by_their_fields():
    @record(order=True)
    class Problem:
        """Ordered."""

        path: str
        message: str

    found = [Problem("b", "x"), Problem("a", "z"), Problem("a", "y")]
    assert sorted(found) == [Problem("a", "y"), Problem("a", "z"), Problem("b", "x")]
    assert Problem("a", "b") < Problem("a", "c") <= Problem("a", "c")
    with pytest.raises(TypeError):
        _ = Problem("a", "b") < Point(1)


def test_a_mutable_record_changes_and_is_not_hashable():
    @record(frozen=False)
    class Context:
        """Mutable."""

        role: str = ""
        events: List[Tuple[str, str]] = Factory(list)

    context = Context()
    context.role = "init"
    context.events.append(("a", "b"))
    assert context == Context("init", [("a", "b")])
    with pytest.raises(TypeError):
        hash(context)


def test_replace_and_as_dict_as_dataclasses_give_them():
    @record
    class Outer:
        """Nesting."""

        inner: Point
        many: Tuple[Point, ...] = ()

    outer = Outer(Point(1), (Point(2, 3),))
    assert replace(outer, many=()) == Outer(Point(1))
    assert replace(Point(1, 2), y=5) == Point(1, 5)
    data = dataclasses.asdict(DataPoint(1))
    assert as_dict(Point(1)) == data
    assert as_dict(outer) == {"inner": data, "many": ({"x": 2, "y": 3, "tags": []},)}
    with pytest.raises(TypeError):
        replace(Point(1), z=1)


def test_a_derived_record_has_its_bases_fields_first():
    @record
    class Labelled(Point):
        """Derived."""

        label: str = ""

    assert Labelled.__record_fields__ == ("x", "y", "tags", "label")
    assert Labelled(1, 2, [], "a").label == "a" and Labelled(1).tags == []


def test_a_field_without_a_default_after_one_with_is_refused_as_dataclasses_refuse_it():
    with pytest.raises(TypeError, match="field 'b' without a default follows one with a default"):

        @record
        class Wrong:
            """Misordered."""

            a: int = 0
            b: int


def test_post_init_derives_values_that_are_read_as_attributes_but_compared_by_fields_alone():
    @record
    class Span:
        """Derived values."""

        start: int
        end: int = 0

        def __post_init__(self) -> None:
            object.__setattr__(self, "length", self.end - self.start)

    span = Span(2, 7)
    assert span.length == 5 and replace(span, end=12).length == 10  # replace derives again
    assert span == Span(2, 7) and repr(span).endswith(".Span(start=2, end=7)")
    assert hash(span) == hash(Span(2, 7))
    with pytest.raises(FrozenError):
        span.length = 1
    assert not hasattr(Point, "__post_init__") and Point.__init__ is not Span.__init__
