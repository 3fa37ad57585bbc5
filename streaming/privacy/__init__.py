"""Personal data encrypted where it is produced, so shredding a subject reaches every copy.

Fields marked ``"pii": true`` in the Avro contracts are encrypted by every producer
(:mod:`.protect`) with AES-256-GCM under the data key of the subject the record names
(``x-pii-subject``); data keys live wrapped by a KEK (:mod:`.provider`) in the compacted
``_streaming.subject-keys`` topic (:mod:`.keylog`); consumers decrypt before handlers
(:mod:`.reveal`). ``streaming audit shred`` tombstones a subject's keys.
"""

from streaming.privacy.errors import SubjectKeysUnavailableError
from streaming.privacy.keylog import KeyGeneration, SubjectKeyLog
from streaming.privacy.plan import PiiPlan, plan_for
from streaming.privacy.protect import FieldProtector
from streaming.privacy.provider import EnvKeyProvider, KeyProvider
from streaming.privacy.reveal import FieldRevealer
from streaming.privacy.tokens import EncryptedValue

__all__ = [
    "EncryptedValue",
    "EnvKeyProvider",
    "FieldProtector",
    "FieldRevealer",
    "KeyGeneration",
    "KeyProvider",
    "PiiPlan",
    "SubjectKeyLog",
    "SubjectKeysUnavailableError",
    "plan_for",
]
