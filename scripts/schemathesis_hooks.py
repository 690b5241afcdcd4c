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
"""

import re
import uuid

import schemathesis

VALID_IDEMPOTENCY_KEY = re.compile(r"^[!-~]{1,255}$")


@schemathesis.hook
def before_call(context, case, kwargs):
    headers = case.headers
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
