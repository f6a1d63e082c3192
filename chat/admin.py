"""Staff's tools: profiles with their decisions (verification, suspension)
as buttons on a profile's page and as bulk actions, every decision kept as a
history row and in Django's admin log; a profile's rooms, open connections
and presence; a room's messages, which staff may remove. Every change goes
through chat.services, as the commands' do."""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import Field, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from chat import services, validation
from chat.errors import ChatError
from chat.models import Decision, Profile

if TYPE_CHECKING:
    ProfileModelAdmin = admin.ModelAdmin[Profile]
    DecisionInlineAdmin = admin.TabularInline[Decision, Profile]
else:  # generic for the type checker only
    ProfileModelAdmin = admin.ModelAdmin
    DecisionInlineAdmin = admin.TabularInline


@dataclass(frozen=True)
class Choice:
    label: str  # the button's and the bulk action's verb
    status: str | None = None  # a verification decision, or else ...
    suspend: bool | None = None  # ... a suspension (True) or its lifting
    needs_reason: bool = False


CHOICES = {
    "approve": Choice("Approve", status=Profile.Status.APPROVED),
    "reject": Choice("Reject", status=Profile.Status.REJECTED, needs_reason=True),
    "reset": Choice("Reset to pending", status=Profile.Status.PENDING),
    "suspend": Choice("Suspend", suspend=True, needs_reason=True),
    "lift": Choice("Lift suspension", suspend=False),
}


def describe(row: Decision) -> str:
    """A history row in words, for the admin log."""
    if row.kind == Decision.Kind.VERIFICATION:
        text = f"Verification {row.from_status} → {row.to_status}"
    elif row.kind == Decision.Kind.MESSAGE_REMOVED:
        text = f"Removed message {row.seq} of room {row.room_id}"
    else:
        text = row.get_kind_display()
    return f"{text}: {row.reason}" if row.reason else text


class DeciderFilter(admin.RelatedOnlyFieldListFilter):
    """The staff user who made the last decision (of those who made one);
    "command" for none."""

    def __init__(self, field: "Field[Any, Any]", request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        super().__init__(field, request, *args, **kwargs)
        self.title = "decider"
        self.empty_value_display = format_html("{}", "command")


class DecisionInline(DecisionInlineAdmin):
    """The profile's history, read-only: rows are written by the services."""

    model = Decision
    fk_name = "profile"
    fields = ("decided_at", "kind", "from_status", "to_status", "decider", "reason", "message")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = "history"

    def has_add_permission(self, request: HttpRequest, obj: Profile | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Profile | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Profile | None = None) -> bool:
        return False

    @admin.display(description="message")
    def message(self, row: Decision) -> str:
        if not row.room_id:
            return ""
        url = reverse("admin:chat_profile_room") + f"?room={row.room_id}"
        return format_html('<a href="{}">room {} seq {}</a>', url, row.room_id, row.seq)


@admin.register(Profile)
class ProfileAdmin(ProfileModelAdmin):
    list_display = ("user_id", "nickname", "status", "suspended", "decided_by", "decided_at", "created_at")
    list_filter = ("status", "suspended", ("decided_at", admin.DateFieldListFilter), ("decided_by", DeciderFilter))
    search_fields = ("user_id", "nickname")
    # Decisions go through the buttons and actions only, so that open
    # connections hear of them and the history keeps them.
    readonly_fields = ("status", "suspended", "decided_by", "decided_at", "created_at")
    inlines = (DecisionInline,)
    actions = ("approve", "reject", "reset", "suspend", "lift")
    change_form_template = "admin/chat/profile/change_form.html"

    def get_readonly_fields(self, request: HttpRequest, obj: Profile | None = None) -> tuple[str, ...]:
        # A decision belongs to one user: renaming an approved profile to
        # another id would approve that user with no event and no trace.
        return (*self.readonly_fields, "user_id") if obj is not None else self.readonly_fields

    def has_delete_permission(self, request: HttpRequest, obj: Profile | None = None) -> bool:
        # Deleting a decided profile would let it be re-created undecided,
        # around the actions; rejecting is how a user is turned away.
        return False

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/decide/", view(self.decide_view), name="chat_profile_decide"),
            path("room/", view(self.room_view), name="chat_profile_room"),
            *super().get_urls(),
        ]

    # --- decisions ------------------------------------------------------------------

    def _apply(self, request: HttpRequest, profiles: list[Profile], choice: Choice, reason: str) -> None:
        staff = request.user if isinstance(request.user, User) else None  # the admin requires a login
        user_ids = [profile.user_id for profile in profiles]
        try:
            if choice.status is not None:
                rows = services.set_verification(
                    user_ids=user_ids, status=choice.status, decided_by=staff, reason=reason
                )
            else:
                rows = services.set_suspension(
                    user_ids=user_ids, suspended=bool(choice.suspend), decided_by=staff, reason=reason
                )
        except ChatError as error:
            self.message_user(request, f"Nothing changed: {error.message}", messages.ERROR)
            return
        for row in rows:
            if row.profile is not None:
                self.log_change(request, row.profile, describe(row))
        self.message_user(request, f"{choice.label}: {len(rows)} profile(s).", messages.SUCCESS)

    def _decide(self, request: HttpRequest, profiles: list[Profile], name: str, **form: Any) -> HttpResponse | None:
        """Apply the choice, or, if it needs a reason that was not given,
        answer with a page that asks for one and posts back with it."""
        choice = CHOICES[name]
        reason = request.POST.get("reason", "").strip()
        if choice.needs_reason and not reason:
            context = {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": f"{choice.label}: give a reason",
                "choice": choice,
                "profiles": profiles,
                "asked": "reason" in request.POST,
                "form": form,
            }
            return TemplateResponse(request, "admin/chat/profile/reason.html", context)
        self._apply(request, profiles, choice, reason)
        return None

    def _bulk(self, request: HttpRequest, queryset: QuerySet[Profile], name: str) -> HttpResponse | None:
        form = {"action": name, "selected": [str(pk) for pk in queryset.values_list("pk", flat=True)]}
        return self._decide(request, list(queryset), name, **form)

    @admin.action(description="Approve verification of selected profiles")
    def approve(self, request: HttpRequest, queryset: QuerySet[Profile]) -> HttpResponse | None:
        return self._bulk(request, queryset, "approve")

    @admin.action(description="Reject verification of selected profiles (asks for a reason)")
    def reject(self, request: HttpRequest, queryset: QuerySet[Profile]) -> HttpResponse | None:
        return self._bulk(request, queryset, "reject")

    @admin.action(description="Reset verification of selected profiles to pending")
    def reset(self, request: HttpRequest, queryset: QuerySet[Profile]) -> HttpResponse | None:
        return self._bulk(request, queryset, "reset")

    @admin.action(description="Suspend selected users (asks for a reason)")
    def suspend(self, request: HttpRequest, queryset: QuerySet[Profile]) -> HttpResponse | None:
        return self._bulk(request, queryset, "suspend")

    @admin.action(description="Lift the suspension of selected users")
    def lift(self, request: HttpRequest, queryset: QuerySet[Profile]) -> HttpResponse | None:
        return self._bulk(request, queryset, "lift")

    def decide_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The buttons of a profile's page post here."""
        profile = self.get_object(request, unquote(object_id))
        if profile is None:
            raise Http404
        if not self.has_change_permission(request, profile):
            raise PermissionDenied
        page = reverse("admin:chat_profile_change", args=[profile.pk])
        name = request.POST.get("decision", "")
        if request.method != "POST" or name not in CHOICES:
            return HttpResponseRedirect(page)
        asking = self._decide(request, [profile], name, decision=name)
        return asking or HttpResponseRedirect(page)

    # --- a profile's page -------------------------------------------------------------

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        profile = self.get_object(request, unquote(object_id))
        context = {**(extra_context or {}), "choices": CHOICES}
        if profile is not None:
            try:
                context["overview"] = services.user_overview_sync(profile.user_id)
            except ChatError as error:
                context["overview_error"] = error.message
        return super().change_view(request, object_id, form_url, context)

    # --- a room's messages ------------------------------------------------------------

    def room_view(self, request: HttpRequest) -> HttpResponse:
        """A room's messages by room id, newest last, each removable."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            return self._remove(request)
        context: dict[str, Any] = {**self.admin_site.each_context(request), "opts": self.opts, "title": "Room messages"}
        room_id = request.GET.get("room", "").strip()
        if room_id:
            try:
                before = validation.query_int(request.GET.get("before"), "before")
                context["page"] = services.room_messages_sync(validation.room_id(room_id), before_seq=before)
            except ChatError as error:
                context["error"] = error.message
        context["room_id"] = room_id
        return TemplateResponse(request, "admin/chat/profile/room_messages.html", context)

    def _remove(self, request: HttpRequest) -> HttpResponse:
        room_id = request.POST.get("room", "")
        staff = request.user if isinstance(request.user, User) else None
        try:
            seq = validation.seq(validation.query_int(request.POST.get("seq"), "seq"), "seq")
            row = services.remove_message(
                room_id=validation.room_id(room_id),
                seq=seq,
                decided_by=staff,
                reason=request.POST.get("reason", "").strip(),
            )
        except ChatError as error:
            self.message_user(request, f"Not removed: {error.message}", messages.ERROR)
        else:
            if row.profile is not None:
                self.log_change(request, row.profile, describe(row))
            self.message_user(request, f"Message {seq} removed.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:chat_profile_room") + f"?room={room_id}")
