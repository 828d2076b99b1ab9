"""The one exception class for a user's mistake, which the command-line tools print as one line."""


class UserError(ValueError):
    """A mistake in the user's input (a missing or malformed file); the message is one line naming it.

    ``AnnotationError`` and ``ResultsError`` are kinds of it; ``cli.run`` turns it into exit code 2.
    """
