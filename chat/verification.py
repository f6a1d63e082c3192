"""Profiles in Django's database, where staff find users to decide on
(deciding is an action: chat.services.verification).

Blocking (the ORM); async callers use chat.blocking.run_orm. The request
path reads the PROFILE item instead (chat.services.profiles)."""

from chat.models import Profile

APPROVED = Profile.Status.APPROVED


def ensure_profile(*, user_id: str, nickname: str) -> str:
    """Create the user's profile (pending) on first sight, keep its nickname
    current, and return its verification status."""
    profile, created = Profile.objects.get_or_create(user_id=user_id, defaults={"nickname": nickname})
    if not created and nickname and profile.nickname != nickname:
        Profile.objects.filter(pk=profile.pk).update(nickname=nickname)
    return profile.status
