"""Reads for user sessions."""

from apps.core.errors import ApplicationError
from apps.miniprograms.models import MiniProgram


def mini_program_by_app_id(*, app_id: str, super_app: str | None = None) -> MiniProgram:
    """The mini program a session is asked for. The caller is anonymous and an appId is public, so this
    reads across tenants by design; what it returns is only used to call the wallet for that mini program."""
    candidates = MiniProgram.objects.unscoped().select_related("merchant", "super_app").filter(app_id=app_id)
    if super_app:
        candidates = candidates.filter(super_app__code=super_app)
    found = list(candidates[:2])
    if not found:
        raise ApplicationError("validation.does_not_exist", f"No mini program {app_id!r}.", attr="app_id")
    if len(found) > 1:
        raise ApplicationError(
            "sessions.super_app_required",
            f"Several super apps have a mini program {app_id!r}; name yours in super_app.",
            attr="super_app",
        )
    return found[0]
