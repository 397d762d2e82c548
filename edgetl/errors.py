"""The one exception type edgetl raises for every failure a user can act on."""


class EdgetlError(Exception):
    """An expected failure: bad input, a bad option, a missing extra, a corrupt artefact.

    The CLI prints its message as one line on stderr and exits 2. Anything else that
    escapes is a bug and keeps its traceback.
    """
