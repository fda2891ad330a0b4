"""The one exception type that means "the user asked for something impossible".

The CLI prints a `UserError` as one line and exits non-zero with no traceback; anything else is a
bug and keeps its traceback. Raise it for bad config keys, missing paths, unreachable servers.
"""


class UserError(Exception):
    """A problem the user can fix: the message names it in one line."""
