"""Security layer: JWT with refresh rotation and revocation, RBAC, peppered password
hashing, field encryption, and the hooks that guard the registry and the clients."""

from streaming.security.authorizer import BoundTopicAuthorizer, TopicAuthorizer
from streaming.security.credentials import (
    Credential,
    CredentialStore,
    InMemoryCredentialStore,
    PasswordAuthenticator,
)
from streaming.security.errors import (
    AccessDenied,
    DecryptionError,
    HashingError,
    InvalidTokenError,
    RefreshTokenReuseError,
    RevocationsUnavailableError,
    TokenRejection,
    TokenRevokedError,
    UnknownKeyError,
    UnknownPepperError,
)
from streaming.security.events import (
    AuditCallback,
    SecurityEvent,
    SecurityEventType,
    log_security_event,
)
from streaming.security.fields import FieldEncryptor
from streaming.security.guard import default_rbac, require_permission
from streaming.security.hashing import PasswordCheck, SecureHasher, validate_password_strength
from streaming.security.http import HttpAuthenticator, HttpError, http_error, registry_requirement
from streaming.security.jwt import JWTManager, TokenClaims, TokenPair
from streaming.security.keys import KeyRing, SigningKey
from streaming.security.principal import Principal
from streaming.security.rbac import (
    Action,
    InMemoryPolicySource,
    Permission,
    Policy,
    PolicySource,
    ResourceType,
    Role,
    RoleBasedAccessControl,
    YamlPolicySource,
)
from streaming.security.revocation import (
    InMemoryRevocationStore,
    PostgresRevocationStore,
    RevocationStore,
)
from streaming.security.revocation_log import (
    RevocationLog,
    SharedRevocationStore,
    shared_revocations,
)

__all__ = [
    "AccessDenied",
    "Action",
    "AuditCallback",
    "BoundTopicAuthorizer",
    "Credential",
    "CredentialStore",
    "DecryptionError",
    "FieldEncryptor",
    "HashingError",
    "HttpAuthenticator",
    "HttpError",
    "InMemoryCredentialStore",
    "InMemoryPolicySource",
    "InMemoryRevocationStore",
    "InvalidTokenError",
    "JWTManager",
    "KeyRing",
    "PasswordAuthenticator",
    "PasswordCheck",
    "Permission",
    "Policy",
    "PolicySource",
    "PostgresRevocationStore",
    "Principal",
    "RefreshTokenReuseError",
    "ResourceType",
    "RevocationLog",
    "RevocationStore",
    "RevocationsUnavailableError",
    "Role",
    "RoleBasedAccessControl",
    "SecureHasher",
    "SecurityEvent",
    "SecurityEventType",
    "SharedRevocationStore",
    "SigningKey",
    "TokenClaims",
    "TokenPair",
    "TokenRejection",
    "TokenRevokedError",
    "TopicAuthorizer",
    "UnknownKeyError",
    "UnknownPepperError",
    "YamlPolicySource",
    "default_rbac",
    "http_error",
    "log_security_event",
    "registry_requirement",
    "require_permission",
    "shared_revocations",
    "validate_password_strength",
]
