"""What the demo pages read: the demo mini programs, whichever merchant they belong to (the demo plays
every merchant, as a phone plays every mini program)."""

from __future__ import annotations

from apps.miniprograms.models import Feature, MiniProgram, MiniProgramFeature, MiniProgramStatus

from .services import DEMO_CATALOGUE


def demo_mini_programs() -> list[MiniProgram]:
    """The seeded demo mini programs that are published, in catalogue order."""
    app_ids = [app_id for (app_id, _mode, _features), _products in DEMO_CATALOGUE.values()]
    found = {
        mini_program.app_id: mini_program
        for mini_program in MiniProgram.objects.unscoped()
        .select_related("merchant")
        .filter(app_id__in=app_ids, status=MiniProgramStatus.PUBLISHED)
    }
    return [found[app_id] for app_id in app_ids if app_id in found]


def demo_mini_program(app_id: str) -> MiniProgram | None:
    return next((found for found in demo_mini_programs() if found.app_id == app_id), None)


def has_pre_authorization(mini_program: MiniProgram) -> bool:
    # Read past the tenant scope, as the mini programs are: a demo page has no credential yet.
    return (
        MiniProgramFeature.objects.unscoped()
        .filter(mini_program=mini_program, feature=Feature.PRE_AUTHORIZATION, enabled=True)
        .exists()
    )
