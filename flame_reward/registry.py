"""One registry mechanism for everything plugins register: a name -> item map filled by a hook.

Task types, pair formats and named data sets are each a :class:`Registry` over their
``register_*`` hook. A registry fills itself on first use by calling its hook with its own
:meth:`Registry.add` as the ``register`` callback, and fills itself again whenever a plugin
has been registered or unregistered since (the plugin manager counts those), so no caller
has to remember to invalidate a cache; :meth:`Registry.reset` forgets the contents anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from flame_reward.errors import InvalidInput
from flame_reward.plugins import get_plugin_manager

T = TypeVar("T")


def _same_value(old: Any, new: Any) -> bool:
    return bool(old == new)


class Registry(Mapping[str, T], Generic[T]):
    """Items registered through the ``hook`` hook, by their ``name`` attribute, in
    registration order.

    ``what`` names an item in messages ("task type"). Registering a name twice is an
    :class:`InvalidInput` naming the field ``name``, unless ``same(old, new)`` says the two
    are the same item (by default: equal). ``unknown(name, known)`` builds the error
    :meth:`lookup` raises for a name nobody registered.
    """

    def __init__(
        self,
        hook: str,
        what: str,
        unknown: Callable[[str, list[str]], Exception],
        same: Callable[[T, T], bool] = _same_value,
    ) -> None:
        self.hook = hook
        self.what = what
        self.unknown = unknown
        self.same = same
        self._items: dict[str, T] | None = None
        self._filled_from: tuple[Any, int] | None = None

    # -- filling --------------------------------------------------------------------------
    def add(self, item: T) -> T:
        """The ``register`` callback the hook receives."""
        assert self._items is not None, "items are registered while the hook runs"
        name = getattr(item, "name", None)
        if not isinstance(name, str) or not name:
            raise InvalidInput("name", f"{self.what} {type(item).__name__} has no name")
        old = self._items.get(name)
        if old is not None and not self.same(old, item):
            raise InvalidInput("name", f"{self.what} {name!r} is registered twice")
        self._items[name] = item
        return item

    def _filled(self) -> dict[str, T]:
        pm = get_plugin_manager()
        if self._items is None or self._filled_from != (pm, pm.generation):
            self._items = {}
            try:
                getattr(pm.hook, self.hook)(register=self.add)
            except BaseException:
                self._items = None  # a half-filled registry must not be read as the whole
                raise
            self._filled_from = (pm, pm.generation)
        return self._items

    def reset(self) -> None:
        """Forget the items; the next read calls the hook again."""
        self._items = None
        self._filled_from = None

    # -- reading --------------------------------------------------------------------------
    def lookup(self, name: str) -> T:
        """The item called ``name``; the registry's ``unknown`` error when there is none."""
        items = self._filled()
        if name not in items:
            raise self.unknown(name, list(items))
        return items[name]

    def __getitem__(self, name: str) -> T:
        return self._filled()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._filled()))

    def __len__(self) -> int:
        return len(self._filled())

    def __repr__(self) -> str:
        return f"Registry({self.hook!r}: {', '.join(self._filled())})"


__all__ = ["Registry"]
