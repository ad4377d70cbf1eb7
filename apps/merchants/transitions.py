"""The registration state machine: every allowed move, in one table.

draft → submitted → under_review → verified → expired
                ↘               ↘ rejected → submitted (resubmission)
expired → submitted (a renewed license)
"""

from .models import RegistrationStatus as S

REGISTRATION: dict[str, frozenset[str]] = {
    S.DRAFT: frozenset({S.SUBMITTED}),
    S.SUBMITTED: frozenset({S.UNDER_REVIEW, S.VERIFIED, S.REJECTED}),
    S.UNDER_REVIEW: frozenset({S.VERIFIED, S.REJECTED}),
    S.VERIFIED: frozenset({S.EXPIRED}),
    S.REJECTED: frozenset({S.SUBMITTED}),
    S.EXPIRED: frozenset({S.SUBMITTED}),
}
