//! Security schemes every service's OpenAPI document declares: `bearer` (an access token from
//! the auth service) and `internal` (the `x-internal-token` other services present). Use as
//! `#[openapi(modifiers(&kit::openapi::BearerSecurity))]`.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::Modify;

use crate::client::INTERNAL_TOKEN_HEADER;

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
