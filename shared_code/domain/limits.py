"""Limits shared by request validation and the database's CHECK constraints (sql/)."""

from typing import Final, Literal

DISPLAY_NAME_MAX: Final = 50
BIO_MAX: Final = 500
USERNAME_PATTERN: Final = r"^[A-Za-z0-9_]{3,30}$"
AVATAR_URL_MAX: Final = 2048
POST_CONTENT_MAX: Final = 2000
COMMENT_CONTENT_MAX: Final = 1000
MEDIA_PER_POST_MAX: Final = 10
FLAG_REASON_MAX: Final = 500
PAGE_LIMIT_DEFAULT: Final = 20
PAGE_LIMIT_MAX: Final = 100

ReactionType = Literal["like", "love", "laugh", "wow", "sad", "angry"]
REACTION_TYPES: Final[tuple[ReactionType, ...]] = ("like", "love", "laugh", "wow", "sad", "angry")
AuthProvider = Literal["google", "apple", "github", "email"]

MODERATION_REASON_MAX: Final = 1000
APPEAL_STATEMENT_MAX: Final = 2000
Severity = Literal["low", "medium", "high", "critical"]
ModerationAction = Literal["hide", "remove", "restore"]
AppealDecision = Literal["upheld", "overturned"]
