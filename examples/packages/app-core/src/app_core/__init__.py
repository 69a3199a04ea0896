"""Example core application. Plugins register under the ``app_core.plugins`` entry-point group."""

from importlib.metadata import entry_points

__version__ = "1.2.0"


def plugins() -> dict[str, object]:
    """Interface name -> the plugin object that implements it."""
    return {ep.name: ep.load() for ep in entry_points(group="app_core.plugins")}
