"""The operator dashboard at `/dashboard`: server-rendered pages, live through server-sent
events, behind one-time login links. Off unless SIDECAR_DASHBOARD_SECRET is set; served by
the processes that serve the API (roles `all` and `api`).

Modules:
- `auth`: login links, the session cookie, CSRF tokens (docs/operations.md has the model).
- `routing`: `Page`, `NavEntry`, `view()` (the guarded route), `page()` (the layout).
- `markup`: the template approach (`fmt` escapes every value that is not `Html`).
- `live`: server-sent events from store snapshots (`stream()`).
- `login`, `sessions`, `session`: the pages. `app`: `PAGES` (the nav order) and the mount.

Adding a page (one module per page):
1. Write `service/dashboard/NAME.py` with handlers `async def handler(request) -> Response`
   that return `page(request, title, body, active="/NAME")`, where `body` is built with
   `fmt()`. Every route is `view(path, handler, methods)`: sign-in and CSRF are checked
   there (a form carries `hidden_csrf(request)`; the script sends `X-CSRF-Token`).
2. End the module with `PAGE = Page(nav=NavEntry("Title", "/NAME"), routes=[...])`; paths
   are relative to /dashboard. `NavEntry(..., cluster_only=True)` shows only in a cluster.
3. Add `NAME.PAGE` to `PAGES` in `service/dashboard/app.py` (its place is its nav order).
4. A live part: give its container `data-stream="/dashboard/stream/NAME"` and serve that
   path with `stream(request, snapshot, "fragment")`, where `snapshot()` returns
   `fragments({key: fmt(...)})`, each fragment's root element carrying `data-key="key"`
   (render the page's first copy through `fragments` too). The script replaces the
   element with that key inside the container when its markup changed, appends new ones
   and removes those gone; nothing else to write in JavaScript.
5. Buttons that change something: a `<form method="post" data-async>` with
   `hidden_csrf(request)`; the script posts it with `Accept: application/json` and shows an
   error in `#flash`; without the script it posts normally (answer with a 303 back).
Static files live in `service/dashboard/static/` (`/dashboard/static/...`); an npm package
is served by mounting its directory under node_modules the same way (no CDN, no inline
script: the CSP allows only 'self').
"""
