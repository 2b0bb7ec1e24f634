"""Records: the part of `dataclasses` this provider uses, at a fraction of its cost.

A record class is written as a dataclass is: fields annotated in order, defaults as class
values, `Factory(make)` for a default made anew for each instance. Its instances take the
fields positionally or by name, compare, hash and order by them, print as a dataclass
does, and (unless `frozen=False`) refuse to change; a `__post_init__` runs last, as a
dataclass's does (it sets what it derives with `object.__setattr__`). `dataclasses` imports `inspect` (and
with it `ast`, `dis`, `tokenize`) and compiles five or six methods for every class it makes:
some 15 ms of every boot for this provider's classes, where these share one set of methods.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds of every boot: annotations only
if TYPE_CHECKING:
    from typing import Any, Callable, TypeVar

    from typing_extensions import dataclass_transform

    _T = TypeVar("_T")
else:

    def dataclass_transform(**kwargs: object) -> Any:  # what a type checker reads, nothing at run time
        return lambda decorator: decorator


_NOTHING = object()
_CLASS_VARIABLE = ("ClassVar", "typing.ClassVar")  # annotations, as text: not fields


class FrozenError(AttributeError):
    """A field of a frozen record was assigned or deleted."""


class _Factory:
    """A default made for each instance (dataclasses' default_factory)."""

    def __init__(self, make: Callable[[], Any]):
        self.make = make


if TYPE_CHECKING:  # to a type checker, a field's default is what the factory makes

    def Factory(make: Callable[[], _T]) -> _T: ...  # a class at run time
else:
    Factory = _Factory


@dataclass_transform(eq_default=True, order_default=False, frozen_default=True)
def record(cls: Any = None, *, frozen: bool = True, order: bool = False) -> Any:
    """Make `cls` a record class (see the module's docstring); a base record's fields first."""

    def make(cls: Any) -> Any:
        annotations = cls.__dict__.get("__annotations__")
        if annotations is None:  # Python 3.14 evaluates annotations on demand
            annotations = cls.__annotations__ if "__annotate__" in cls.__dict__ else {}
        own = tuple(n for n, kind in annotations.items() if not str(kind).startswith(_CLASS_VARIABLE))
        inherited = getattr(cls, "__record_fields__", ())
        names = inherited + tuple(n for n in own if n not in inherited)
        defaults = dict(getattr(cls, "__record_defaults__", {}))
        for name in own:
            value = cls.__dict__.get(name, _NOTHING)
            if value is not _NOTHING:
                defaults[name] = value
                if isinstance(value, _Factory):
                    delattr(cls, name)
            elif defaults:
                raise TypeError(
                    f"{cls.__name__}: field {name!r} without a default follows one with a default"
                )
        cls.__record_fields__ = names
        cls.__record_defaults__ = defaults
        cls.__init__ = _init_then_post if hasattr(cls, "__post_init__") else _init
        cls.__repr__ = _repr
        cls.__eq__ = _eq
        if frozen:
            cls.__setattr__ = _refuse_set
            cls.__delattr__ = _refuse_delete
            cls.__hash__ = _hash
        else:
            cls.__hash__ = None  # mutable and compared by value: unhashable, as a dataclass
        if order:
            cls.__lt__, cls.__le__, cls.__gt__, cls.__ge__ = _lt, _le, _gt, _ge
        return cls

    return make if cls is None else make(cls)


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    cls = type(self)
    names = cls.__record_fields__
    if len(args) > len(names):
        raise TypeError(
            f"{cls.__name__}() takes {len(names)} positional arguments but {len(args)} were given"
        )
    values = dict(zip(names, args))
    for name, value in kwargs.items():
        if name not in names:
            raise TypeError(f"{cls.__name__}() got an unexpected keyword argument {name!r}")
        if name in values:
            raise TypeError(f"{cls.__name__}() got multiple values for argument {name!r}")
        values[name] = value
    defaults = cls.__record_defaults__
    for name in names:
        if name not in values:
            if name not in defaults:
                raise TypeError(f"{cls.__name__}() missing required argument {name!r}")
            default = defaults[name]
            values[name] = default.make() if isinstance(default, _Factory) else default
        object.__setattr__(self, name, values[name])


def _init_then_post(self: Any, *args: Any, **kwargs: Any) -> None:
    _init(self, *args, **kwargs)
    self.__post_init__()


def _values(self: Any) -> tuple:
    return tuple(getattr(self, name) for name in type(self).__record_fields__)


def _repr(self: Any) -> str:
    shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in type(self).__record_fields__)
    return f"{type(self).__qualname__}({shown})"


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _values(self) == _values(other)


def _hash(self: Any) -> int:
    return hash(_values(self))


def _compare(operator: Callable[[tuple, tuple], bool]) -> Callable[[Any, Any], Any]:
    def compare(self: Any, other: Any) -> Any:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return operator(_values(self), _values(other))

    return compare


_lt = _compare(lambda a, b: a < b)
_le = _compare(lambda a, b: a <= b)
_gt = _compare(lambda a, b: a > b)
_ge = _compare(lambda a, b: a >= b)


def _refuse_set(self: Any, name: str, value: Any) -> None:
    raise FrozenError(f"cannot assign to field {name!r}")


def _refuse_delete(self: Any, name: str) -> None:
    raise FrozenError(f"cannot delete field {name!r}")


def replace(instance: Any, **changes: Any) -> Any:
    """A copy of `instance` with `changes` (dataclasses.replace)."""
    values = {name: getattr(instance, name) for name in type(instance).__record_fields__}
    values.update(changes)
    return type(instance)(**values)


def as_dict(value: Any) -> Any:
    """A record as a dict, records inside it too (dataclasses.asdict)."""
    fields = getattr(type(value), "__record_fields__", None)
    if fields is not None:
        return {name: as_dict(getattr(value, name)) for name in fields}
    if isinstance(value, (list, tuple)):
        return type(value)(as_dict(item) for item in value)
    if isinstance(value, dict):
        return {key: as_dict(item) for key, item in value.items()}
    return value
