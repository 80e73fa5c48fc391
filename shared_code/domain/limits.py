"""Every limit and vocabulary of the domain, written once: request validation (shared_code/schemas),
the OpenAPI document, the services and the settings derive theirs from here. The database's CHECK
constraints (sql/) repeat them, and tests/unit/test_limits_match_schema.py holds the two together.
"""

from typing import Final, Literal, get_args

DISPLAY_NAME_MAX: Final = 50
BIO_MAX: Final = 500
USERNAME_PATTERN: Final = r"^[A-Za-z0-9_]{3,30}$"
# Names nobody may claim (compared without regard to case): they would let an account pass for the
# service, its staff or its routes. The OpenAPI document lists them in the username's description.
RESERVED_USERNAMES: Final[frozenset[str]] = frozenset(
    {
        "admin",
        "administrator",
        "api",
        "chorus",
        "help",
        "me",
        "moderator",
        "moderators",
        "null",
        "official",
        "operator",
        "root",
        "security",
        "staff",
        "support",
        "system",
        "undefined",
    }
)
AVATAR_URL_MAX: Final = 2048
# What account erasure leaves in place of a text it erases (posts, comments, flags, appeals, the display
# name): the rows stay (others' comments, counts and moderation decisions refer to them), the words go.
ERASED_TEXT: Final = "[erased]"
ERASED_DISPLAY_NAME: Final = "Deleted account"
POST_CONTENT_MAX: Final = 2000
COMMENT_CONTENT_MAX: Final = 1000
MEDIA_PER_POST_MAX: Final = 10
FLAG_REASON_MAX: Final = 500
PAGE_LIMIT_DEFAULT: Final = 20
PAGE_LIMIT_MAX: Final = 100

ReactionType = Literal["like", "love", "laugh", "wow", "sad", "angry"]
REACTION_TYPES: Final[tuple[ReactionType, ...]] = get_args(ReactionType)
AuthProvider = Literal["google", "apple", "github", "email"]

MODERATION_REASON_MAX: Final = 1000
# A reason given in a query string (a moderator's DELETE ?reason=) is shorter: percent-encoded, each
# character may take 12 bytes, and request lines past about 8 KB are refused by HTTP servers.
QUERY_REASON_MAX: Final = 200
APPEAL_STATEMENT_MAX: Final = 2000
Severity = Literal["low", "medium", "high", "critical"]
ModerationAction = Literal["hide", "remove", "restore"]
AppealDecision = Literal["upheld", "overturned"]

# What may be uploaded: raster images and common video containers. No SVG: an SVG is an XML
# document that can carry scripts and external references, so serving user SVGs invites XSS.
# Nothing else that a browser might render as a document (HTML, PDF) either.
MediaType = Literal[
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "image/avif",
    "video/mp4",
    "video/webm",
    "video/quicktime",
]
ALLOWED_MEDIA_TYPES: Final[frozenset[str]] = frozenset(get_args(MediaType))
# The most any deployment may allow; MEDIA_MAX_BYTES sets the actual limit (checked by the service).
# 5000 MiB is the largest blob one PUT can upload.
MEDIA_SIZE_LIMIT: Final = 5000 * 1024 * 1024

# The largest PostgreSQL bigint: outbox events and change-feed failures are bigint identities.
BIGINT_MAX: Final = 2**63 - 1
# Ids one operator request may name, so that any valid body fits the request size limit (64 KiB
# by default).
OPERATOR_IDS_MAX: Final = 1000
SKIP_REASON_MAX: Final = 2000

# Direct messages (docs/api.md "Conversations and messages"; sql/0022 repeats them).
MESSAGE_TEXT_MAX: Final = 4000
CONVERSATION_TITLE_MAX: Final = 100
# End-to-end encryption: keys and ciphertexts are the client's opaque strings (e.g. base64).
DEVICE_ID_PATTERN: Final = r"^[A-Za-z0-9_.:-]{1,64}$"
DEVICE_KEY_MAX: Final = 1024
MESSAGE_CIPHERTEXT_MAX: Final = 65536
# Ciphertexts one message may carry (one per recipient device), and one-time prekeys one upload adds.
MESSAGE_CIPHERTEXTS_MAX: Final = 500
ONE_TIME_PREKEYS_MAX: Final = 200
