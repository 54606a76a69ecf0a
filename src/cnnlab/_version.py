"""The installed distribution's version, read from its metadata so pyproject.toml stays the one place it is set."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cnnlab")
except PackageNotFoundError:  # a source tree put on sys.path without `pip install`
    __version__ = "0+unknown"
