"""``ProviderRegistry``: the provider instances one client uses, each made on first
use from the config (or from a known kind's standard environment variables) and
sharing the client's transport; providers passed in by the caller come first."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from . import errors
from ._http import Transport
from .config import Settings, implicit_provider, key_variable
from .providers import known_kinds, provider_class
from .providers.base import Provider


class ProviderRegistry:
    def __init__(
        self, settings: Settings, env: Mapping[str, str], transport: Transport, given: Iterable[Provider] = ()
    ) -> None:
        self.settings = settings
        self.transport = transport
        self._env = env
        self._instances: dict[str, Provider] = {p.name: p for p in given}
        self.given = frozenset(self._instances)
        """The names of the providers passed in (not the ones made on use)."""

    def get(self, name: str) -> Provider:
        """The provider called ``name``; ``ProviderNotConfigured`` for a known kind
        without its key, ``InvalidRequest`` for a name nobody knows."""
        found = self._instances.get(name)
        if found is not None:
            return found
        config = self.settings.providers.get(name) or implicit_provider(name, self._env)
        if config is None:
            raise self._missing(name)
        instance = self._instances[name] = provider_class(config.kind)(config, self.transport)
        return instance

    def _missing(self, name: str) -> errors.LLMError:
        if name in known_kinds():
            return errors.ProviderNotConfigured(
                f"provider {name!r} has no API key: set {key_variable(name)} or add it to the config file",
                provider=name,
            )
        configured = sorted({*self.settings.providers, *self._instances})
        return errors.InvalidRequest(
            f"unknown provider {name!r}; configured: {', '.join(configured) or 'none'}; "
            f"known kinds: {', '.join(known_kinds())}"
        )

    async def aclose(self) -> None:
        """Close every provider made or given, then the shared transport."""
        for provider in self._instances.values():
            await provider.aclose()
        await self.transport.aclose()
