from typing import TYPE_CHECKING

from django.contrib import admin, messages
from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import QuerySet
from django.http import HttpRequest

from chat import services
from chat.models import Profile

if TYPE_CHECKING:
    ProfileModelAdmin = admin.ModelAdmin[Profile]
else:  # ModelAdmin is generic for the type checker only
    ProfileModelAdmin = admin.ModelAdmin


@admin.register(Profile)
class ProfileAdmin(ProfileModelAdmin):
    list_display = ("user_id", "nickname", "status", "decided_by", "decided_at", "created_at")
    list_filter = ("status",)
    search_fields = ("user_id", "nickname")
    # Decisions go through the actions only, so that open connections hear of them.
    readonly_fields = ("status", "decided_by", "decided_at", "created_at")
    actions = ("approve", "reject")

    def get_readonly_fields(self, request: HttpRequest, obj: Profile | None = None) -> tuple[str, ...]:
        # A decision belongs to one user: renaming an approved profile to
        # another id would approve that user with no event and no trace.
        return (*self.readonly_fields, "user_id") if obj is not None else self.readonly_fields

    def has_delete_permission(self, request: HttpRequest, obj: Profile | None = None) -> bool:
        # Deleting a decided profile would let it be re-created undecided,
        # around the actions; rejecting is how a user is turned away.
        return False

    def _decide(self, request: HttpRequest, queryset: QuerySet[Profile], status: str) -> None:
        user_ids = list(queryset.values_list("user_id", flat=True))
        staff = request.user if isinstance(request.user, AbstractBaseUser) else None  # the admin requires a login
        count = services.set_verification(user_ids=user_ids, status=status, decided_by=staff)
        self.message_user(request, f"{count} profile(s) marked {status}.", messages.SUCCESS)

    @admin.action(description="Approve verification of selected profiles")
    def approve(self, request: HttpRequest, queryset: QuerySet[Profile]) -> None:
        self._decide(request, queryset, Profile.Status.APPROVED)

    @admin.action(description="Reject verification of selected profiles")
    def reject(self, request: HttpRequest, queryset: QuerySet[Profile]) -> None:
        self._decide(request, queryset, Profile.Status.REJECTED)
