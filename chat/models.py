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
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.nickname or self.user_id} ({self.status})"
