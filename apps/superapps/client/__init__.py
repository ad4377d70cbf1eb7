"""The super app wire protocol: signing, typed messages, the OpenAPI client and classic orderStr."""
