"""The error a user can fix: a bad configuration, forget request or file.

Its message names the problem; the command line prints it as one ``error:`` line and exits with
status 2, as argparse does. Any other exception is a bug and keeps its traceback.
"""


class BadInput(ValueError):
    """A bad configuration, request or file, described by its message."""


class NotApplicable(BadInput):
    """A method that cannot unlearn the configured model at all (not a setting to fix): named explicitly it
    is an error; selected by ``unlearn_method: all`` it is skipped, with this message logged."""
