//! The platform's OpenAPI 3.1 document, assembled from the services' own documents.

use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder};
use utoipa_swagger_ui::SwaggerUi;

/// Path of the assembled document.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

/// Merges the services' documents under the platform's info and the `bearer` scheme.
pub fn assemble(parts: impl IntoIterator<Item = OpenApi>) -> OpenApi {
    let mut doc = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("ShopPlatform API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The public API of ShopPlatform, served by the gateway. Errors are RFC 9457 \
                     problem documents (application/problem+json); money is integer minor units \
                     with an ISO 4217 currency; ids are UUIDs; times are RFC 3339 UTC.",
                ))
                .build(),
        )
        .components(Some(
            ComponentsBuilder::new()
                .security_scheme(
                    "bearer",
                    SecurityScheme::Http(
                        HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build(),
                    ),
                )
                .build(),
        ))
        .build();
    for part in parts {
        doc.merge(part);
    }
    doc
}

/// `GET /api/v1/openapi.json` and Swagger UI at `/docs`.
pub fn routes(doc: OpenApi) -> Router {
    Router::new().merge(SwaggerUi::new("/docs").url(OPENAPI_PATH, doc))
}
