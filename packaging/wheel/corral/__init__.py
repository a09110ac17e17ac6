"""corral, installed from its wheel: the binary is in the environment's scripts folder (a
virtualenv's bin/); `python -m corral ARGS...` runs it. See `corral --help`."""

from corral._version import VERSION as __version__  # noqa: F401
