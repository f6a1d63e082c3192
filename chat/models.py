from django.conf import settings
from django.db import models


class Profile(models.Model):
    """A chat user as staff see it: who they are and whether their identity
    verification is approved (only approved users may send messages)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"

    user_id = models.CharField(max_length=256, unique=True, help_text="The token's subject (sub)")
    nickname = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Staff user who made the last decision; empty when made by a command",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    suspended = models.BooleanField(
        default=False, db_index=True, help_text="Suspended users' sockets are closed and their calls refused"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.nickname or self.user_id} ({self.status})"


class Decision(models.Model):
    """One thing staff (or a command) did about a user, kept for good: a
    verification decision, a suspension or its lifting, or the removal of
    one of their messages."""

    class Kind(models.TextChoices):
        VERIFICATION = "verification"
        SUSPENSION = "suspension"
        SUSPENSION_LIFTED = "suspension_lifted", "Suspension lifted"
        MESSAGE_REMOVED = "message_removed", "Message removed"

    # None for the removal of a system message (no user sent it).
    profile = models.ForeignKey(Profile, null=True, blank=True, on_delete=models.PROTECT, related_name="decisions")
    kind = models.CharField(max_length=32, choices=Kind.choices, default=Kind.VERIFICATION)
    from_status = models.CharField(max_length=16, blank=True, help_text="Verification status before")
    to_status = models.CharField(max_length=16, blank=True, help_text="Verification status after")
    reason = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Staff user; empty when made by a command",
    )
    decided_at = models.DateTimeField(db_index=True)
    room_id = models.CharField(max_length=128, blank=True, help_text="A removed message's room")
    message_id = models.CharField(max_length=64, blank=True)
    seq = models.PositiveBigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-decided_at", "-id"]

    def __str__(self) -> str:
        who = self.profile.user_id if self.profile is not None else "system"
        return f"{self.get_kind_display()} of {who} at {self.decided_at:%Y-%m-%d %H:%M}"

    @property
    def decider(self) -> str:
        """Who decided: the staff user's name, or "command"."""
        return self.decided_by.get_username() if self.decided_by is not None else "command"
