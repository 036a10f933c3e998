//! The dashboard at `/ui`: five files embedded in the binary at compile time (`ui_assets/`),
//! served without a token (they hold no data; every figure comes from the API with the
//! token the user pastes). Each answer carries a Content-Security-Policy that allows scripts,
//! styles and requests from this origin only — no inline script, no other host.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::state::ApiState;

/// The policy of every dashboard answer.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
    base-uri 'none'; frame-ancestors 'none'";

/// The dashboard's files: path under `/ui/`, media type, content.
pub const ASSETS: &[(&str, &str, &str)] = &[
    (
        "",
        "text/html; charset=utf-8",
        include_str!("ui_assets/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("ui_assets/app.js"),
    ),
    (
        "draw.js",
        "text/javascript; charset=utf-8",
        include_str!("ui_assets/draw.js"),
    ),
    (
        "pages.js",
        "text/javascript; charset=utf-8",
        include_str!("ui_assets/pages.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("ui_assets/style.css"),
    ),
];

/// `/` and `/ui` lead to `/ui/`; `/ui/…` serves the files.
pub fn routes() -> Router<ApiState> {
    let mut router = Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }));
    for (path, media, body) in ASSETS {
        router = router.route(
            &format!("/ui/{path}"),
            get(move || async move { asset(media, body) }),
        );
    }
    router
}

fn asset(media: &'static str, body: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Small and part of the binary: always asked again, so an upgrade shows at once.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_asset_holds_an_inline_script_or_a_foreign_address() {
        for (path, _, body) in ASSETS {
            // The SVG namespace is a name, not an address anything is fetched from.
            let body = body.replace("'http://www.w3.org/2000/svg'", "");
            for foreign in ["http://", "https://", "eval(", "new Function", "innerHTML"] {
                assert!(!body.contains(foreign), "{path} holds {foreign}");
            }
        }
        let html = ASSETS[0].2;
        // Every <script> has a src and no body.
        for part in html.split("<script").skip(1) {
            let (tag, rest) = part.split_once('>').expect("a closed tag");
            assert!(tag.contains("src="), "an inline script: {part:.80}");
            assert!(
                rest.starts_with("</script>"),
                "an inline script: {part:.80}"
            );
        }
        assert!(!html.contains(" on"), "no inline event handler attributes");
    }
}
