//! What every service's OpenAPI document shares:
//!
//! - the security schemes: `bearer` (an access token from the auth service) and `internal` (the
//!   `x-internal-token` other services present): `#[openapi(modifiers(&kit::openapi::BearerSecurity))]`
//!   or [`ServiceSecurity`];
//! - the problem responses ([`responses`]), documented once as `#/components/responses/*` with
//!   the `Problem` and `ErrorCode` schemas: every service adds them with the [`Problems`]
//!   modifier and lists them in `#[utoipa::path(responses(...))]` by type, e.g.
//!   `responses((status = 200, body = Product), responses::Read, responses::NotFound)`.

use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Ref, RefOr, Response};
use utoipa::{Modify, PartialSchema, ToSchema};

use crate::client::INTERNAL_TOKEN_HEADER;
use crate::problem::{ErrorCode, FieldError, Problem, PROBLEM_JSON};

fn bearer(openapi: &mut utoipa::openapi::OpenApi) {
    let components = openapi.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
    );
}

/// Declares the `bearer` scheme.
pub struct BearerSecurity;

impl Modify for BearerSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        bearer(openapi);
    }
}

/// Declares `bearer` and `internal` (service-to-service calls).
pub struct ServiceSecurity;

impl Modify for ServiceSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        bearer(openapi);
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "internal",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(INTERNAL_TOKEN_HEADER))),
        );
    }
}

/// Adds the problem responses of [`responses`] (`#/components/responses/*`) and the `Problem`,
/// `FieldError` and `ErrorCode` schemas they refer to.
pub struct Problems;

impl Modify for Problems {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.schemas.insert(Problem::name().into_owned(), Problem::schema());
        components.schemas.insert(FieldError::name().into_owned(), FieldError::schema());
        components.schemas.insert(ErrorCode::name().into_owned(), ErrorCode::schema());
        for (name, response) in responses::components() {
            components.responses.insert(name.to_string(), RefOr::T(response));
        }
        optional_headers_are_strings(openapi);
    }
}

/// An optional header is absent or a string, never `null`: utoipa describes an
/// `Option<String>` header as `type: [string, null]`, which is narrowed to `type: string` here.
fn optional_headers_are_strings(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::ParameterIn;
    use utoipa::openapi::schema::{Schema, SchemaType};
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for op in operations.into_iter().flatten() {
            for p in op.parameters.iter_mut().flatten() {
                if p.parameter_in != ParameterIn::Header {
                    continue;
                }
                if let Some(RefOr::T(Schema::Object(o))) = &mut p.schema {
                    if let SchemaType::Array(types) = &o.schema_type {
                        let rest: Vec<Type> = types.iter().filter(|t| **t != Type::Null).cloned().collect();
                        if let [only] = rest.as_slice() {
                            o.schema_type = SchemaType::Type(only.clone());
                        }
                    }
                }
            }
        }
    }
}

/// String schemas for rules a `#[schema(pattern = …)]` literal would repeat, for
/// `#[schema(schema_with = …)]` (wrap them in a function of the field's own).
pub mod strings {
    use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Type};
    use utoipa::openapi::{RefOr, Schema};

    /// No control character (Unicode category Cc, what `char::is_control` tests) anywhere.
    pub const NO_CONTROL: &str = r"^[^\u0000-\u001f\u007f-\u009f]*$";
    /// Something else than whitespace (what `str::trim` removes) somewhere, and no control
    /// character anywhere.
    pub const TEXT: &str = concat!(
        r"^[^\u0000-\u001f\u007f-\u009f]*",
        r"[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]",
        r"[^\u0000-\u001f\u007f-\u009f]*$"
    );
    /// Something else than whitespace somewhere (control characters allowed).
    pub const NOT_BLANK: &str = r"[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";
    /// No NUL character.
    pub const NO_NUL: &str = r"^[^\u0000]*$";

    /// A string of `min` to `max` characters matching `pattern` (none when empty); `nullable`
    /// admits `null` too (as `anyOf: [string, null]`: with `type: [string, null]` a length
    /// limit reads, to some tools, as if it applied to `null`).
    pub fn string(pattern: &str, min: usize, max: usize, nullable: bool, description: &str) -> RefOr<Schema> {
        let mut b = ObjectBuilder::new().schema_type(Type::String).max_length(Some(max));
        if min > 0 {
            b = b.min_length(Some(min));
        }
        if !pattern.is_empty() {
            // The lengths are repeated in the pattern: generators that build strings from a
            // pattern may not apply `minLength`/`maxLength` as well.
            b = b.pattern(Some(format!(r"^(?=[\s\S]*?(?:{pattern}))[\s\S]{{{min},{max}}}$")));
        }
        if nullable {
            AnyOfBuilder::new()
                .item(b)
                .item(ObjectBuilder::new().schema_type(Type::Null))
                .description(Some(description))
                .into()
        } else {
            b.description(Some(description)).into()
        }
    }

    /// Text a person typed: 1 to `max` characters as sent, not only whitespace, no control
    /// characters ([`TEXT`]).
    pub fn text(max: usize, description: &str) -> RefOr<Schema> {
        string(TEXT, 1, max, false, description)
    }
}

/// The problem responses, each a `utoipa::IntoResponses` to list in `#[utoipa::path]`: single
/// statuses ([`NotFound`], [`Conflict`], …) and the sets every operation of a kind can answer
/// ([`Read`], [`Write`], [`Admin`]). Each refers to `#/components/responses/<Name>`, which
/// [`super::Problems`] adds.
pub mod responses {
    use std::collections::BTreeMap;

    use super::*;

    /// One problem response: its component name, status (a code or a range such as `5XX`),
    /// description, and whether it carries `Retry-After`.
    struct Spec {
        name: &'static str,
        status: &'static str,
        description: &'static str,
        retry_after: bool,
    }

    const SPECS: &[Spec] = &[
        Spec {
            name: "BadRequest",
            status: "400",
            description: "The request cannot be read: `malformed_json` (the body is not JSON), `invalid_path` or \
                          `invalid_query` (a parameter does not parse), `idempotency_key_required` or \
                          `invalid_idempotency_key`, `bad_request`.",
            retry_after: false,
        },
        Spec {
            name: "Unauthorized",
            status: "401",
            description: "No or bad credentials: `token_missing`, `token_invalid`, `token_expired` (with \
                          `WWW-Authenticate: Bearer`), `invalid_internal_token`. A bearer token that is present \
                          is verified at the gateway on every operation, even where it is optional.",
            retry_after: false,
        },
        Spec {
            name: "Forbidden",
            status: "403",
            description: "`forbidden`: authenticated, but the operation needs another role (admin).",
            retry_after: false,
        },
        Spec {
            name: "NotFound",
            status: "404",
            description: "`not_found`: no such resource, or one the caller may not see (someone else's is \
                          reported as absent).",
            retry_after: false,
        },
        Spec {
            name: "Conflict",
            status: "409",
            description: "A conflict with the current state; `code` says which (`duplicate_sku`, \
                          `insufficient_stock`, `illegal_transition`, `idempotency_request_in_progress`, …: \
                          see the `ErrorCode` schema and the operation's description).",
            retry_after: false,
        },
        Spec {
            name: "PayloadTooLarge",
            status: "413",
            description: "`payload_too_large`: the body is over the gateway's limit (1 MiB by default).",
            retry_after: false,
        },
        Spec {
            name: "UnsupportedMediaType",
            status: "415",
            description: "`unsupported_media_type`: a JSON body without `Content-Type: application/json`.",
            retry_after: false,
        },
        Spec {
            name: "Unprocessable",
            status: "422",
            description: "Well-formed but not acceptable: `validation_failed` with `errors` naming each field \
                          (wrong JSON types, unknown fields, values out of range, rules the schema cannot \
                          express), or a specific code such as `unknown_product` or `idempotency_key_reused`.",
            retry_after: false,
        },
        Spec {
            name: "TooManyRequests",
            status: "429",
            description: "`too_many_requests`: the gateway's rate limit per client (or the sign-in throttle) \
                          was reached; retry after `Retry-After` seconds.",
            retry_after: true,
        },
        Spec {
            name: "ServiceUnavailable",
            status: "503",
            description: "A dependency is not answering: `service_unavailable`, `catalog_unavailable`, \
                          `payment_provider_unavailable`; retry later.",
            retry_after: true,
        },
        Spec {
            name: "ServerError",
            status: "5XX",
            description: "The server failed: `internal_error` (500, a bug, details are logged), `bad_gateway` \
                          (502), `service_unavailable` (503: a service or its database is down), \
                          `gateway_timeout` (504).",
            retry_after: false,
        },
    ];

    fn spec(name: &str) -> &'static Spec {
        SPECS.iter().find(|s| s.name == name).expect("a declared problem response")
    }

    /// The response components (`#/components/responses/<name>`).
    pub(super) fn components() -> Vec<(&'static str, Response)> {
        SPECS
            .iter()
            .map(|s| {
                let mut r = ResponseBuilder::new().description(s.description).content(
                    PROBLEM_JSON,
                    ContentBuilder::new().schema(Some(Ref::from_schema_name(Problem::name()))).build(),
                );
                if s.retry_after {
                    r = r.header(
                        "Retry-After",
                        HeaderBuilder::new()
                            .schema(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)))
                            .description(Some("Seconds to wait before retrying"))
                            .build(),
                    );
                }
                (s.name, r.build())
            })
            .collect()
    }

    fn refs(names: &[&str]) -> BTreeMap<String, RefOr<Response>> {
        names
            .iter()
            .map(|n| {
                let s = spec(n);
                (s.status.to_string(), RefOr::Ref(Ref::from_response_name(s.name)))
            })
            .collect()
    }

    macro_rules! sets {
        ($( $(#[$doc:meta])* $ty:ident => [$($name:literal),+], )+) => {
            $(
                $(#[$doc])*
                pub struct $ty;

                impl utoipa::IntoResponses for $ty {
                    fn responses() -> BTreeMap<String, RefOr<Response>> {
                        refs(&[$($name),+])
                    }
                }
            )+
        };
    }

    sets! {
        /// 400 `malformed_json`, `invalid_path`, `invalid_query`, …
        BadRequest => ["BadRequest"],
        /// 401: no or bad credentials.
        Unauthorized => ["Unauthorized"],
        /// 403: not allowed (admin only).
        Forbidden => ["Forbidden"],
        /// 404: no such resource (or someone else's).
        NotFound => ["NotFound"],
        /// 409: a conflict with the current state.
        Conflict => ["Conflict"],
        /// 413: body too large.
        PayloadTooLarge => ["PayloadTooLarge"],
        /// 415: not JSON.
        UnsupportedMediaType => ["UnsupportedMediaType"],
        /// 422: unacceptable values.
        Unprocessable => ["Unprocessable"],
        /// 429 with `Retry-After`.
        TooManyRequests => ["TooManyRequests"],
        /// 503 with `Retry-After`: a dependency is down.
        ServiceUnavailable => ["ServiceUnavailable"],
        /// `5XX`: the server failed.
        ServerError => ["ServerError"],

        /// What every operation behind the gateway can answer: 401 (a bearer token that is
        /// present is verified even where it is optional), 429 (rate limits) and `5XX`.
        Always => ["Unauthorized", "TooManyRequests", "ServerError"],
        /// A read with path or query parameters: [`Always`] plus 400 (a parameter does not
        /// parse).
        Read => ["BadRequest", "Unauthorized", "TooManyRequests", "ServerError"],
        /// A list: [`Read`] plus 422 (a filter's or the page's value is not acceptable).
        List => ["BadRequest", "Unauthorized", "Unprocessable", "TooManyRequests", "ServerError"],
        /// An operation with a JSON body: [`Always`] plus 400 (not JSON, a path parameter does
        /// not parse), 413, 415 and 422.
        Write => [
            "BadRequest", "Unauthorized", "PayloadTooLarge", "UnsupportedMediaType", "Unprocessable",
            "TooManyRequests", "ServerError"
        ],
        /// An admin operation: 401 and 403 (the rest comes with [`Read`] or [`Write`]).
        Admin => ["Unauthorized", "Forbidden"],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::IntoResponses;

    #[test]
    fn every_reference_resolves() {
        let mut doc = utoipa::openapi::OpenApiBuilder::new().build();
        Problems.modify(&mut doc);
        let components = doc.components.unwrap();
        let all = [
            responses::Write::responses(),
            responses::Read::responses(),
            responses::Admin::responses(),
            responses::NotFound::responses(),
            responses::Conflict::responses(),
            responses::ServiceUnavailable::responses(),
        ];
        for set in all {
            for (status, r) in set {
                let RefOr::Ref(r) = r else { panic!("{status} is not a reference") };
                let name = r.ref_location.trim_start_matches("#/components/responses/");
                assert!(components.responses.contains_key(name), "{name}");
            }
        }
        for s in ["Problem", "FieldError", "ErrorCode"] {
            assert!(components.schemas.contains_key(s), "{s}");
        }
        let codes = serde_json::to_value(&components.schemas["ErrorCode"]).unwrap();
        assert_eq!(codes["enum"].as_array().unwrap().len(), ErrorCode::ALL.len());
    }
}
