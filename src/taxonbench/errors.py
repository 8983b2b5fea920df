"""User-facing errors.

Anything a user can cause (a malformed taxonomy, a missing shard, a typo in
params, an unknown method name) raises :class:`TaxonbenchError`. The CLI turns
it into one line on stderr and exit status 2, never a bare traceback.
"""


class TaxonbenchError(Exception):
    """A mistake in the user's input; the message names what and where."""
