"""The one exception type for user-facing problems: bad config values, missing files, absent weights."""


class TransferlabError(Exception):
    """A problem the user can fix; the entry points print it as one line and exit non-zero."""
