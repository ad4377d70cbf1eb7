"""LOG_FORMAT=json: one JSON object a line, carrying the request id, the tenant the work is scoped to and the
public ids (payment, order, refund, …) its message names."""

from __future__ import annotations

import io
import json
import logging
import logging.config

from django.conf import settings

from apps.core import rls
from apps.core.request_context import request_id_var

PAYMENT, ORDER = "pay_01jd3k2m4n5p6q7r8s9t0v1w2x", "ord_01jd3k2m4n5p6q7r8s9t0v1w2y"


def _json_logger() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    config = {
        **settings.LOGGING,
        "handlers": {
            "console": {**settings.LOGGING["handlers"]["console"], "formatter": "json", "stream": stream},
        },
        "disable_existing_loggers": False,
    }
    logging.config.dictConfig(config)
    return logging.getLogger("apps.test_json_logs"), stream


def test_a_json_log_line_names_the_request_and_the_tenant():
    logger, stream = _json_logger()
    try:
        token = request_id_var.set("req_01m83json")
        with rls.scoped(rls.DbScope(isv_id=7, merchant_id=42)):
            logger.warning("refund %s refused", "rfd_01abc")
            logger.warning("payment %s of order %s: %s", PAYMENT, ORDER, "amounts differ")
        request_id_var.reset(token)
        logger.warning("outside any request")
    finally:
        logging.config.dictConfig(settings.LOGGING)
    scoped, about_a_payment, unscoped = (json.loads(line) for line in stream.getvalue().splitlines())
    assert scoped["message"] == "refund rfd_01abc refused"
    assert (scoped["level"], scoped["logger"]) == ("WARNING", "apps.test_json_logs")
    assert (scoped["request_id"], scoped["isv_id"], scoped["merchant_id"]) == ("req_01m83json", 7, 42)
    assert "time" in scoped
    assert (unscoped["isv_id"], unscoped["merchant_id"]) == (None, None)
    # The public ids a message names become fields of their own; what is not an id of ours does not.
    assert (about_a_payment["payment_id"], about_a_payment["order_id"]) == (PAYMENT, ORDER)
    assert "refund_id" not in scoped
    assert "payment_id" not in unscoped
