"""The exception tree: one base, a few specific kinds, messages that name what is concerned."""


class ScorerError(Exception):
    """Base of every error scorer raises on purpose."""


class ConfigError(ScorerError, ValueError):
    """Settings or command-line input that cannot work (checked when they are built)."""


class InvalidWeights(ScorerError, ValueError):
    """Weights that cannot be rebuilt into a model: bad shapes, non-finite values, corrupt trees."""


class UnsupportedModel(ScorerError, TypeError):
    """An estimator or pipeline step that no architecture can export."""


class StoreError(ScorerError):
    """The model store refused or failed an operation."""


class StoreUnavailable(StoreError):
    """The store's servers cannot be reached; the message names the hosts tried."""


class NotFound(StoreError, LookupError):
    """A model, segment or version that does not exist (or is not complete)."""


class ChecksumMismatch(StoreError):
    """Stored weights whose bytes do not match the checksum recorded at publish time."""


class BrokerUnavailable(ScorerError):
    """The Kafka brokers cannot be reached or refuse our TLS/SASL credentials; the message names them."""



class CategoryError(ScorerError, ValueError):
    """A categorical input the model cannot score: an unknown category (the encoder's rule is 'error') or a
    value of the wrong type (a number where categories are strings, or the reverse). ``row`` is its position
    in the batch, ``kind`` is ``unknown_category`` or ``category_type``."""

    def __init__(self, message: str, *, row: int, feature: str, kind: str, detail: str = "") -> None:
        super().__init__(message)
        #: the message without the model's name, for callers that name the model their own way
        self.detail = detail or message
        self.row = row
        self.feature = feature
        self.kind = kind
