// Package artifactory is an emulator of JFrog Artifactory 7.x for tests and `crowsnest demo`,
// written from ../shared/specs/artifactory.md (the spec's marks [C]/[K]/[I] are repeated here
// where the emulator had to choose). No real Artifactory can run here; clients must not depend on
// behaviour the spec marks [I].
//
// Start(t, Options{Upstream: "http://" + reg.Addr()}) serves it on 127.0.0.1 in front of a real
// registry (registryproc). New + ServeHTTP serve it anywhere else. Content lives upstream under
// <physical repo key>/<image>; the emulator keeps its own index of what was pushed through it (or
// recorded with AddManifest) and serves every listing from that index.
//
// Implemented, by the spec's checklist (§8):
//
//  1. Auth (§1.1): Basic with password, access token or reference token; Bearer access or
//     reference token; X-JFrog-Art-Api with a reference token, or an API key with
//     Options.EnableAPIKeys. 401 bodies and `WWW-Authenticate: Basic realm="Artifactory Realm"`
//     exactly as captured ("Bad credentials" / "Authentication is required"), Jackson-style
//     pretty printed. Options.AllowAnonymous lets unauthenticated requests read as "anonymous"
//     (never AQL, file lists or the Event API). User.Repos restricts a user's repositories.
//  2. GET /artifactory/api/system/ping ("OK", no auth) and /api/system/version.
//  3. GET /artifactory/api/repositories with type, packageType (case-insensitive) and project
//     filters; type upper case, packageType capitalised ("Docker", "Oci" [I]); filtered to what the
//     caller may read. Defaults: docker-local, docker-remote, docker (virtual), oci-local,
//     generic-local.
//  4. GET /artifactory/api/repositories/{key}: lower-case rclass and Docker fields for admins,
//     a partial config otherwise [I], 400 "Bad Request" for a missing key [I message].
//     GET /api/system/configuration/webServer (404 with Options.Cloud).
//  5. Docker API at /v2/<repo>/<image>/... (repository path), on <repo>.<Hostname> and
//     <server>-<repo>.<domain> hosts (subdomain; Transport dials them), on ServeRepoPort
//     listeners (port), and at /artifactory/api/docker/<repo>/v2/... (REST form; a malformed one
//     gets 400 "Unsupported docker repository request for '<seg>'"). Token flow with the captured
//     challenge (realm on the base host with the repo key, service = registry host, scope without
//     the repo key, no scope on the ping, root ping realm /v2/token [I]); GET .../v2/token with
//     Basic returns {"token","expires_in"}, POST gets 405. Basic and platform tokens are also
//     accepted directly on /v2. Manifests and blobs are proxied (Location headers mapped back,
//     cross-repo mounts mapped); manifest responses carry X-Artifactory-Docker-Registry, all carry
//     X-JFrog-Version and X-Artifactory-Id. Virtual repos read from members in order and push to
//     defaultDeploymentRepo; a remote repo reads and (standing for caching [I]) writes <key>-cache.
//     Deleting by tag is done by the emulator (distribution 2.x cannot); deleting by digest is
//     proxied and retires every tag with that digest. _catalog and tags/list come from the index
//     with n/last and a Link header only while entries remain [I]; Quirks.RTFACT18971 drops the
//     repo key from the Link path and Quirks.NumericLast makes last a numeric cursor.
//  6. Storage layout (§3.6): <image>/<tag>/manifest.json or list.manifest.json with the docker.*
//     properties, sha256 and artifactory.content-type (and oci.artifact.type); blobs as
//     <image>/<tag>/sha256__<hex>; per-platform manifests of an index in <image>/sha256__<hex>/.
//     _uploads is never listed as an image. Blob sha1/md5 are unknown and omitted.
//  7. AQL (POST /api/search/aql, any Content-Type): items.find with field equality, $eq $ne $gt
//     $gte $lt $lte (numbers, strings, dates), $match/$nmatch (* and ?), $before/$last, $and/$or
//     (arrays), @property criteria; .include (fields, "*", property.*, @key; "type" always shown
//     as in the docs sample [I]), .sort $asc/$desc, .offset, .limit, .distinct. Files only
//     unless the query names type ("any" for both) [I]. Sizes are numbers, dates ISO-8601 with
//     milliseconds. range.total is the number of results in the page, not the overall count
//     (a real quirk [K]); range.limit only with .limit(); Options.AQLMaxLimit trims and adds the
//     hard-limit notification. Unsorted results come in repo/path/name order [I]. Errors are 400.
//  8. Storage API: folder info, file info (size as a string), ?list with deep, depth,
//     listFolders (sha1/sha2), ?properties; 404 "Unable to find item" (local) / "Not Found"
//     (virtual). DELETE {rt}/<repo>/<path> deletes files or folders (emits deleted events).
//     Downloads through {rt}/<repo>/<path> are not emulated.
//  9. Event API at /event/api/v1/subscriptions (admin): list, create (201, 409 when the key
//     exists [I]), get (404 "Subscription does not exist"), put, delete (204), POST /test
//     (synchronous, not logged). Secrets read back as "********" [I]. Criteria: anyLocal,
//     anyRemote, anyFederated, repoKeys (a remote key matches its cache), Ant include/exclude
//     patterns against data.path. Delivery is asynchronous (WebhookOptions.Workers), compact
//     JSON in Artifactory's field order, X-JFrog-Event-Auth = the secret, or the lowercase hex
//     HMAC-SHA256 of the exact body with use_secret_for_signing (Sign), custom headers,
//     jpd_origin only with Options.BaseURL or Cloud, source "jfrog/jfrt@<ulid>". A tag push
//     sends one docker "pushed" (none for per-digest manifests [I]), with image_name the last
//     path segment (Quirks.FullImageName for the docs' full path), platforms from the index
//     (attestation "unknown" entries skipped [I]), image_type "docker" (Quirks.NoImageType).
//     Each stored file also sends artifact "deployed"/"deleted". Retries on connection errors and
//     5xx only, Attempts (3) with Backoff (5s, 30s) and Timeout (10s) [I]; every attempt is in
//     Deliveries() in the troubleshooting record shape. POST /api/docker/<repo>/v2/promote copies
//     through the upstream (blob mounts) and sends "promoted" with the target repo_key [?].
//  10. Faults: Inject(Fault{Endpoint, PathPrefix, Method, Times, Status, RetryAfter, Delay,
//     TruncateAfter}), FailNext; 429/503 carry Retry-After (default 1). DropWebhooks(n) loses
//     deliveries; a receiver that is down is simply a closed URL.
//
// Counters: Count(endpoint) / Counts() for the endpoints "system.ping", "system.version",
// "system.webServer", "repositories.list", "repositories.get", "aql", "storage", "artifact",
// "event.subscriptions", "event.test", "docker.ping", "docker.token", "docker.catalog",
// "docker.tags", "docker.manifest", "docker.blob", "docker.upload", "docker.promote".
package artifactory
