"""apps.basic, unless the file named by $FLAG_BOOT_FILE exists when the module is
imported: then the import fails. A test makes a reload's new code fail to boot by creating the
file, and fixes it by removing the file."""

import os

from apps.basic import app  # noqa: F401  (the app served)

# The message lives apart from the `raise` line, as in apps.broken_import.
MESSAGE = "flag file present: this generation refuses to boot"

_flag = os.environ.get("FLAG_BOOT_FILE")
if _flag and os.path.exists(_flag):
    raise RuntimeError(MESSAGE)
