"""What the people services share: the batch limit and the error of a person's data."""

MAX_BATCH = 1000


class PersonInputError(ValueError):
    """A person's data cannot be stored; `field` names the part and the message says why."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message
