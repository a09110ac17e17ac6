"""An app that cannot be imported: corral must report the error once and exit 3."""

# The message lives apart from the `raise` line: a traceback shows that line's source, and the
# tests count the message's occurrences in corral's output.
MESSAGE = "broken on purpose at import"

raise RuntimeError(MESSAGE)
