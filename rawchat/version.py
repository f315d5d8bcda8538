"""The package version, in one place for setup.cfg and the User-Agent header."""

__version__ = "0.2.0"
