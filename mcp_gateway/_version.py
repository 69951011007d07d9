"""The installed version of mcp-gateway, in a module of its own so that any module can import it without
importing the package root (which would load the app)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mcp-gateway")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
