"""Hooks of the OpenAPI contract run (scripts/schemathesis, schemathesis.toml `hooks`).

Each hook makes a request say what the generated case means, where the rules of HTTP or of
the API's protocol cannot be written in a schema; none changes which data is valid:

- `Idempotency-Key`: one key names one request (docs/api.md, "Idempotency"). The generator
  repeats values across cases, and the API rightly answers a reused key with another body
  `422 idempotency_key_reused`. A valid key is replaced by a fresh UUID, as a client does for
  each new request; an invalid one (empty, too long, not visible ASCII) is sent as generated.
- Path parameters: a generated value that is not a string (an array or object in a negative
  case) is sent as its Python text, which may hold `?` or `#`; unencoded, these end the path,
  so the request reaches another route (and gets, e.g., 405). They are percent-encoded, so the
  API sees the whole, still invalid, value.
- `POST /api/v1/auth/logout-all` signs out every session of the caller: sent with the admin's
  token it would revoke the token every other operation of the run uses. It is sent with the
  token of the run's own throwaway account (`SHOP_ST_THROWAWAY_TOKEN`) instead; after the first
  call that token is refused (401 `token_revoked`), which the operation documents. Other
  methods (the check for unsupported methods) keep the admin's token: their answer is 405.

And one filter, for a difference between regex dialects, not a rule of the API:

- A `$` ends a `pattern` in the document, where patterns follow ECMA-262: there `$` matches
  only at the end of the string. Python's `re`, which generates the strings, also lets `$`
  match before a final newline, so it makes values ending in `\n` that the document does not
  allow (and the API rightly refuses: 422 for a control character). Generated bodies, queries
  and path values with a string ending in a newline are dropped, not changed.
"""

import os
import re
import uuid

import schemathesis

VALID_IDEMPOTENCY_KEY = re.compile(r"^[!-~]{1,255}$")


SIGNS_OUT_EVERYWHERE = "/api/v1/auth/logout-all"


@schemathesis.hook
def before_call(context, case, kwargs):
    headers = case.headers
    if case.operation.path == SIGNS_OUT_EVERYWHERE and case.method.upper() == "POST" and headers:
        for name in list(headers):
            # Only the admin's token: the checks' own wrong or missing credentials stay.
            if name.lower() == "authorization" and headers[name] == "Bearer " + os.environ["SHOP_ST_ADMIN_TOKEN"]:
                headers[name] = "Bearer " + os.environ["SHOP_ST_THROWAWAY_TOKEN"]
    if headers:
        for name in list(headers):
            if name.lower() != "idempotency-key":
                continue
            value = headers[name]
            if isinstance(value, str) and VALID_IDEMPOTENCY_KEY.match(value):
                headers[name] = str(uuid.uuid4())
    params = case.path_parameters
    if params:
        for name, value in list(params.items()):
            text = value if isinstance(value, str) else str(value)
            if "?" in text or "#" in text:
                params[name] = text.replace("?", "%3F").replace("#", "%23")


def _ends_a_string_with_a_newline(value):
    if isinstance(value, str):
        return value.endswith("\n")
    if isinstance(value, dict):
        return any(_ends_a_string_with_a_newline(k) or _ends_a_string_with_a_newline(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_ends_a_string_with_a_newline(v) for v in value)
    return False


@schemathesis.hook
def filter_body(context, body):
    return not _ends_a_string_with_a_newline(body)


@schemathesis.hook
def filter_query(context, query):
    return not _ends_a_string_with_a_newline(query)


@schemathesis.hook
def filter_path_parameters(context, path_parameters):
    return not _ends_a_string_with_a_newline(path_parameters)
