//! The route table: every route under `/api/v1`, what its caller needs, its handler, and what
//! the OpenAPI document says of it.

use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, patch, post, put};

use super::{ApiRoute, route};
use crate::auth::{Need, Role};
use crate::http::openapi::{self, Op};
use crate::http::state::ApiState;
use crate::http::views::{ApplyResult, Items, ObjectList};
use crate::http::{
    actions, agents, apply, apps, audit_log, cluster, image_requests, images, nodes, policy,
    sources, stats, tokens, watch,
};
use crate::policy::Policy;
use crate::spec::AppDocument;
use crate::stats::host::HostStats;
use crate::store::security::{ImageRequest, TokenInfo};
use crate::store::{Event, ObjectView};

const APP_YAML: &str = "apiVersion: wharf/v1\nkind: App\nmetadata:\n  name: web\n  namespace: demo\nspec:\n  image: nginx:1.27\n  ports:\n    - \"8080:80\"\n  resources:\n    memory: 256Mi\n    cpus: 0.5\n";
const APP_PATCH: &str = r#"{"spec": {"resources": {"memory": "512Mi"}}}"#;

/// Every route under `/api/v1`.
pub fn api_table() -> Vec<(ApiRoute, MethodRouter<ApiState>)> {
    use Method as M;
    use Need::{Everywhere, Namespace, Somewhere, Token};
    use Role::{Admin, Editor, Viewer};
    let app = "/namespaces/{ns}/apps/{name}";
    vec![
        // Each document is checked against its own namespace (Image: admin everywhere).
        route(M::POST, "/apply", Somewhere(Editor), post(apply::apply)).doc(
            Op::new(
                "apply",
                "Objects",
                "Apply documents (create or update; prune a set)",
            )
            .describe(
                "A YAML stream (documents separated by `---`) or JSON (one \
                document, an array, or a List). Applied whole: every \
                document is valid or none is written. Each document needs \
                editor in its own namespace (Images: admin on every \
                namespace).",
            )
            .query::<apply::ApplyQuery>()
            .documents::<openapi::AnyDocument>(APP_YAML)
            .ok::<ApplyResult>("What was (or, in a dry run, would be) done to each object.")
            .errors(&[400, 403, 409, 413, 422, 503, 507]),
        ),
        route(M::GET, "/whoami", Token, get(tokens::whoami)).doc(
            Op::new("whoami", "Tokens", "The calling token: its id and grants")
                .ok::<tokens::WhoAmI>("The token."),
        ),
        route(M::GET, "/cluster", Token, get(cluster::cluster)).doc(
            Op::new(
                "cluster",
                "Cluster",
                "The instances on this database and which one leads",
            )
            .describe(
                "Several instances on one PostgreSQL database elect a leader, which \
                reconciles; every instance serves the API. `self` is the instance that \
                answered. Alone on SQLite, the instance always leads.",
            )
            .ok::<cluster::ClusterView>("The instances, the leader and the lease."),
        ),
        // The mode, the engine and (swarm mode) the cluster.
        route(M::GET, "/info", Token, get(nodes::info)).doc(
            Op::new(
                "info",
                "Nodes",
                "The mode, the engine and (swarm mode) the cluster",
            )
            .ok::<nodes::Info>("What this wharf runs on.")
            .errors(&[503]),
        ),
        // Swarm mode (409 in solo mode).
        route(M::GET, "/nodes", Everywhere(Viewer), get(nodes::list)).doc(
            Op::new(
                "listNodes",
                "Nodes",
                "The swarm's nodes (swarm mode; 409 in solo mode)",
            )
            .ok::<Items<nodes::NodeView>>("Every node, with its declared Node object.")
            .errors(&[409, 503]),
        ),
        route(M::GET, "/nodes/{node}", Everywhere(Viewer), get(nodes::get)).doc(
            Op::new(
                "getNode",
                "Nodes",
                "One node as the engine inspects it (swarm mode)",
            )
            .ok::<openapi::EngineObject>("Docker's node object, as the engine answers it.")
            .errors(&[404, 409, 503]),
        ),
        // Deletes the `kind: Node` object; the node stays as it is.
        route(
            M::DELETE,
            "/nodes/{node}",
            Everywhere(Admin),
            delete(nodes::delete),
        )
        .doc(
            Op::new(
                "deleteNodeObject",
                "Nodes",
                "Delete the API-owned `kind: Node` object (the node stays as \
                it is)",
            )
            .ok::<nodes::NodeDeleted>("The object is deleted.")
            .errors(&[404, 409]),
        ),
        // Node agents dial in here (an agent token, swarm mode).
        route(M::GET, "/agents/connect", Need::Agent, get(agents::connect)).doc(
            Op::new(
                "agentConnect",
                "Nodes",
                "A node agent's WebSocket (swarm mode)",
            )
            .answers_raw(
                101,
                None,
                "Switching to the agent protocol over a WebSocket.",
            )
            .errors(&[400, 409]),
        ),
        route(
            M::GET,
            "/nodes/{node}/stats",
            Everywhere(Viewer),
            get(nodes::node_stats),
        )
        .doc(
            Op::new(
                "nodeStats",
                "Stats",
                "A node's host figures, as its agent read them last (swarm \
                mode)",
            )
            .ok::<nodes::NodeStats>("The latest reading.")
            .errors(&[404, 409, 503]),
        ),
        route(
            M::GET,
            "/nodes/{node}/stats/history",
            Everywhere(Viewer),
            get(nodes::node_stats_history),
        )
        .doc(
            Op::new(
                "nodeStatsHistory",
                "Stats",
                "A node's stored host readings (swarm mode)",
            )
            .query::<nodes::HistoryQuery>()
            .ok::<nodes::NodeStatsHistory>("The readings in the window, oldest first.")
            .errors(&[400, 404, 409]),
        ),
        // Apps: only the namespaces the token may read; nodes: a viewer of every namespace.
        route(M::GET, "/watch", Token, get(watch::watch)).doc(
            Op::new(
                "watch",
                "Watch",
                "A list's changes as server-sent events (apps, images or nodes)",
            )
            .describe(
                "Opens with every item as `ADDED`, then `SYNCED`; then each change \
                as `ADDED`, `MODIFIED` or `DELETED`, the item as the list's GET \
                shows it. A list that cannot be read is an `ERROR` event and the \
                stream goes on; a revoked or expired token's stream ends with a \
                401 `ERROR`. Comments every 15 s keep it open. Apps of every \
                namespace keep those the token may read; one namespace's need its \
                viewer, nodes a viewer of every namespace (else 403).",
            )
            .query::<watch::WatchQuery>()
            .streams::<watch::WatchEvent>("The events, as `event: TYPE` and `data: JSON`.")
            .errors(&[400, 409, 502, 503]),
        ),
        // Lists only the namespaces the token may read.
        route(M::GET, "/apps", Token, get(apps::list_all)).doc(
            Op::new(
                "listApps",
                "Apps",
                "Apps of every namespace the token may read",
            )
            .query::<apps::ListQuery>()
            .ok::<ObjectList<apps::AppView<'static>>>(
                "The apps, with their status and latest usage.",
            )
            .errors(&[400]),
        ),
        route(
            M::GET,
            "/sources",
            Everywhere(Viewer),
            get(sources::sources),
        )
        .doc(
            Op::new(
                "sources",
                "Objects",
                "Spec files' problems and the git source's commit",
            )
            .ok::<sources::SourceProblems>("Every rejected file, and the git source's state."),
        ),
        route(
            M::GET,
            "/namespaces/{ns}/apps",
            Namespace(Viewer),
            get(apps::list_namespace),
        )
        .doc(
            Op::new("listNamespaceApps", "Apps", "Apps of one namespace")
                .query::<apps::ListQuery>()
                .ok::<ObjectList<apps::AppView<'static>>>(
                    "The apps, with their status and latest usage.",
                )
                .errors(&[400]),
        ),
        route(M::GET, app, Namespace(Viewer), get(apps::get_app)).doc(
            Op::new(
                "getApp",
                "Apps",
                "One app: its document, status, usage and a pull under way",
            )
            .ok::<apps::AppView<'static>>("The app.")
            .errors(&[400, 404]),
        ),
        route(M::PUT, app, Namespace(Editor), put(apps::put_app)).doc(
            Op::new("putApp", "Apps", "Create or replace an app")
                .describe(
                    "The document's name and namespace, when given, must match \
                    the path. `If-Match: <resourceVersion>` makes the write \
                    conditional.",
                )
                .documents::<AppDocument>(APP_YAML)
                .ok::<ObjectView<'static>>("Replaced (or unchanged).")
                .answers::<ObjectView<'static>>(201, "Created.")
                .errors(&[400, 409, 412, 413, 422, 507]),
        ),
        route(M::PATCH, app, Namespace(Editor), patch(apps::patch_app)).doc(
            Op::new(
                "patchApp",
                "Apps",
                "Change an app with a JSON merge patch (RFC 7396)",
            )
            .merge_patch::<openapi::AnyJson>(APP_PATCH)
            .ok::<ObjectView<'static>>("The app as patched.")
            .errors(&[400, 404, 409, 412, 413, 422, 507]),
        ),
        route(M::DELETE, app, Namespace(Editor), delete(apps::delete_app)).doc(
            Op::new(
                "deleteApp",
                "Apps",
                "Mark an app for deletion (the loop removes its containers)",
            )
            .query::<apps::DeleteQuery>()
            .ok::<ObjectView<'static>>("The app, now terminating.")
            .errors(&[400, 404, 409]),
        ),
        route(
            M::GET,
            "/namespaces/{ns}/apps/{name}/events",
            Namespace(Viewer),
            get(apps::app_events),
        )
        .doc(
            Op::new("appEvents", "Apps", "An app's events, oldest first")
                .ok::<Items<Event>>("The events.")
                .errors(&[400, 404]),
        ),
        route(
            M::POST,
            "/namespaces/{ns}/apps/{name}/restart",
            Namespace(Editor),
            post(actions::restart),
        )
        .doc(
            Op::new(
                "restartApp",
                "Actions",
                "Restart an app's container (every task in swarm mode)",
            )
            .ok::<actions::ActionResult>("Restarted.")
            .errors(&[400, 404, 409, 502, 503]),
        ),
        route(
            M::POST,
            "/namespaces/{ns}/apps/{name}/kill",
            Namespace(Editor),
            post(actions::kill),
        )
        .doc(
            Op::new("killApp", "Actions", "Send a signal to an app's container")
                .query::<actions::KillQuery>()
                .ok::<actions::ActionResult>("The signal is sent.")
                .errors(&[400, 404, 409, 502, 503]),
        ),
        route(
            M::POST,
            "/namespaces/{ns}/apps/{name}/hard-reset",
            Namespace(Editor),
            post(actions::hard_reset),
        )
        .doc(
            Op::new(
                "hardResetApp",
                "Actions",
                "Remove an app's container (and, asked, its volumes) and \
                create it afresh",
            )
            .query::<actions::HardResetQuery>()
            .ok::<actions::ActionResult>("Reset.")
            .errors(&[400, 404, 409, 502, 503]),
        ),
        route(
            M::GET,
            "/namespaces/{ns}/apps/{name}/inspect",
            Namespace(Viewer),
            get(actions::inspect),
        )
        .doc(
            Op::new(
                "inspectApp",
                "Actions",
                "Docker's inspection of an app's container (or one task's)",
            )
            .query::<actions::TaskQuery>()
            .ok::<openapi::EngineObject>("The engine's container object, as it answers it.")
            .errors(&[400, 404, 409, 502, 503]),
        ),
        route(
            M::GET,
            "/namespaces/{ns}/apps/{name}/logs",
            Namespace(Viewer),
            get(actions::logs),
        )
        .doc(
            Op::new(
                "appLogs",
                "Actions",
                "An app's log: a tail, or followed as it grows",
            )
            .query::<actions::LogsQuery>()
            .answers_raw(
                200,
                Some("text/plain"),
                "The log's lines (a stream when following).",
            )
            .errors(&[400, 404, 409, 502, 503]),
        ),
        route(
            M::POST,
            "/namespaces/{ns}/apps/{name}/git/{op}",
            Namespace(Editor),
            post(actions::git),
        )
        .doc(
            Op::new(
                "appGit",
                "Actions",
                "Run a git operation (pull, checkout, status) in an app's \
                container",
            )
            .describe("The parameters come from the query string or a JSON body.")
            .query::<actions::GitRequest>()
            .json_body::<actions::GitRequest>(false)
            .ok::<actions::GitResult>("What git printed, and what it found.")
            .errors(&[400, 404, 409, 422, 502, 503]),
        ),
        route(
            M::GET,
            "/namespaces/{ns}/apps/{name}/stats",
            Namespace(Viewer),
            get(stats::app_stats),
        )
        .doc(
            Op::new(
                "appStats",
                "Stats",
                "An app's CPU, memory, network and block I/O over a window",
            )
            .query::<stats::StatsQuery>()
            .ok::<stats::StatsSeries>("The samples (or rollups) in the window.")
            .errors(&[400, 404]),
        ),
        route(
            M::GET,
            "/namespaces/{ns}/apps/{name}/uptime",
            Namespace(Viewer),
            get(stats::app_uptime),
        )
        .doc(
            Op::new(
                "appUptime",
                "Stats",
                "An app's availability over a window, with its downtimes",
            )
            .query::<stats::UptimeQuery>()
            .ok::<stats::Uptime>("Availability and downtime intervals.")
            .errors(&[400, 404]),
        ),
        route(
            M::GET,
            "/namespaces/{ns}/users",
            Namespace(Viewer),
            get(apps::users),
        )
        .doc(
            Op::new(
                "namespaceUsers",
                "Tokens",
                "The tokens with a grant on the namespace",
            )
            .ok::<apps::UserList>("The users.")
            .errors(&[400]),
        ),
        route(
            M::GET,
            "/namespaces/{ns}/policy",
            Namespace(Viewer),
            get(policy::get_policy),
        )
        .doc(
            Op::new(
                "getPolicy",
                "Policy",
                "The namespace's policy: its override, or the default",
            )
            .ok::<policy::NamespacePolicy>("The effective policy.")
            .errors(&[400]),
        ),
        route(
            M::PUT,
            "/namespaces/{ns}/policy",
            Everywhere(Admin),
            put(policy::put_policy),
        )
        .doc(
            Op::new(
                "putPolicy",
                "Policy",
                "Replace the namespace's policy override",
            )
            .documents::<Policy>("maxAppMemory: 2Gi\nallowPrivileged: false\n")
            .ok::<policy::NamespacePolicy>("The policy now in force.")
            .errors(&[400, 413, 422]),
        ),
        route(
            M::DELETE,
            "/namespaces/{ns}/policy",
            Everywhere(Admin),
            delete(policy::delete_policy),
        )
        .doc(
            Op::new(
                "deletePolicy",
                "Policy",
                "Remove the namespace's override (the default applies)",
            )
            .ok::<policy::NamespacePolicy>("The policy now in force.")
            .errors(&[400]),
        ),
        route(
            M::GET,
            "/host/stats",
            Everywhere(Admin),
            get(stats::host_now),
        )
        .doc(
            Op::new(
                "hostStats",
                "Stats",
                "The host's CPU, memory, disk and load now",
            )
            .ok::<stats::Timed<HostStats>>("A reading."),
        ),
        route(
            M::GET,
            "/host/stats/history",
            Everywhere(Admin),
            get(stats::host_history),
        )
        .doc(
            Op::new(
                "hostStatsHistory",
                "Stats",
                "The host's stored readings over a window",
            )
            .query::<stats::HistoryQuery>()
            .ok::<stats::HostHistory>("The readings, oldest first.")
            .errors(&[400]),
        ),
        route(M::GET, "/images", Token, get(images::list)).doc(
            Op::new(
                "listImages",
                "Images",
                "Declared images and the engine's other images",
            )
            .ok::<ObjectList<images::ImageItem<'static>>>("The images.")
            .errors(&[503]),
        ),
        route(
            M::POST,
            "/images:update-all",
            Everywhere(Admin),
            post(images::update_all),
        )
        .doc(
            Op::new("updateAllImages", "Images", "Pull every declared image now")
                .ok::<images::UpdateAll>("What each pull did."),
        ),
        route(M::GET, "/images/{name}", Token, get(images::get)).doc(
            Op::new(
                "getImage",
                "Images",
                "One declared image, with the engine's copy and a pull under \
                way",
            )
            .ok::<images::DeclaredImage<'static>>("The image.")
            .errors(&[400, 404]),
        ),
        route(
            M::DELETE,
            "/images/{name}",
            Everywhere(Admin),
            delete(images::delete),
        )
        .doc(
            Op::new(
                "deleteImage",
                "Images",
                "Delete a declared image (refused while an app uses it)",
            )
            .query::<images::DeleteQuery>()
            .ok::<ObjectView<'static>>("The image, now terminating.")
            .errors(&[400, 404, 409]),
        ),
        route(
            M::POST,
            "/images/{name}/pull",
            Everywhere(Admin),
            post(images::pull),
        )
        .doc(
            Op::new(
                "pullImage",
                "Images",
                "Pull a declared image now (answers when the pull is done)",
            )
            .ok::<images::DeclaredImage<'static>>("Pulled.")
            .errors(&[400, 404, 409, 502, 503]),
        ),
        route(
            M::GET,
            "/images/{name}/events",
            Token,
            get(images::image_events),
        )
        .doc(
            Op::new(
                "imageEvents",
                "Images",
                "A declared image's events, oldest first",
            )
            .ok::<Items<Event>>("The events.")
            .errors(&[400, 404]),
        ),
        route(
            M::POST,
            "/image-requests",
            Somewhere(Editor),
            post(image_requests::request_image),
        )
        .doc(
            Op::new(
                "requestImage",
                "Image requests",
                "Ask an admin for an image",
            )
            .json_body::<image_requests::ImageRequestBody>(true)
            .answers::<ImageRequest>(201, "The request is made.")
            .ok::<image_requests::RequestAnswer>(
                "A pending request for it exists, or an Image already \
                declares it.",
            )
            .errors(&[400, 413]),
        ),
        // Admins see every request, others their own.
        route(
            M::GET,
            "/image-requests",
            Token,
            get(image_requests::list_image_requests),
        )
        .doc(
            Op::new(
                "listImageRequests",
                "Image requests",
                "Image requests (admins: every one; others: their own)",
            )
            .query::<image_requests::RequestListParams>()
            .ok::<Items<ImageRequest>>("The requests.")
            .errors(&[400]),
        ),
        route(
            M::POST,
            "/image-requests/{id}/approve",
            Everywhere(Admin),
            post(image_requests::approve_image_request),
        )
        .doc(
            Op::new(
                "approveImageRequest",
                "Image requests",
                "Approve a request: declares the Image",
            )
            .ok::<image_requests::Approved>("Approved; the Image is declared.")
            .errors(&[400, 404, 409, 422]),
        ),
        route(
            M::POST,
            "/image-requests/{id}/reject",
            Everywhere(Admin),
            post(image_requests::reject_image_request),
        )
        .doc(
            Op::new(
                "rejectImageRequest",
                "Image requests",
                "Reject a request, with a reason",
            )
            .json_body::<image_requests::RejectBody>(false)
            .ok::<ImageRequest>("Rejected.")
            .errors(&[400, 404, 409]),
        ),
        route(
            M::POST,
            "/tokens",
            Everywhere(Admin),
            post(tokens::create_token),
        )
        .doc(
            Op::new(
                "createToken",
                "Tokens",
                "Make a token (its secret is shown once)",
            )
            .json_body::<tokens::TokenRequest>(true)
            .answers::<tokens::NewToken>(201, "The token and its secret.")
            .errors(&[400, 413]),
        ),
        route(
            M::GET,
            "/tokens",
            Everywhere(Admin),
            get(tokens::list_tokens),
        )
        .doc(
            Op::new("listTokens", "Tokens", "Every token (never a secret)")
                .ok::<Items<TokenInfo>>("The tokens."),
        ),
        route(
            M::DELETE,
            "/tokens/{id}",
            Everywhere(Admin),
            delete(tokens::revoke_token),
        )
        .doc(
            Op::new("revokeToken", "Tokens", "Revoke a token")
                .ok::<TokenInfo>("Revoked.")
                .errors(&[400, 404]),
        ),
        route(M::GET, "/audit", Everywhere(Admin), get(audit_log::audit)).doc(
            Op::new(
                "audit",
                "Audit",
                "The audit log: every write and refusal, newest first",
            )
            .query::<audit_log::AuditParams>()
            .ok::<audit_log::AuditPage>("A page of entries.")
            .errors(&[400]),
        ),
    ]
}
