// The /docs page: Swagger UI on /openapi.json, and "Try it out" requests to /api/* signed
// with a secret pasted into the page (held in this closure only: never stored, never sent).
"use strict";

(function () {
  const encoder = new TextEncoder();
  let secret = null;

  // X-HMAC-Signature: lowercase hex HMAC-SHA256 of "{ts}\n{METHOD}\n{path}\n" + body bytes,
  // the scheme service/signing.py verifies.
  async function sign(key, timestamp, method, path, body) {
    const hmacKey = await crypto.subtle.importKey(
      "raw", encoder.encode(key), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    const head = encoder.encode(`${timestamp}\n${method.toUpperCase()}\n${path}\n`);
    const message = new Uint8Array(head.length + body.length);
    message.set(head);
    message.set(body, head.length);
    const mac = new Uint8Array(await crypto.subtle.sign("HMAC", hmacKey, message));
    return Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // The path and query as the browser sends them: the serialised URL less origin and fragment
  // (URL.search drops a lone "?", which is still sent).
  function requestTarget(url) {
    return url.href.slice(url.origin.length).split("#")[0];
  }

  function bodyBytes(request) {
    const body = request.body;
    if (body === undefined || body === null || body === "") return new Uint8Array(0);
    if (typeof body === "string") return encoder.encode(body);
    if (Object.getPrototypeOf(body) === Object.prototype) {
      // Sign exactly what is sent: send the JSON text that was signed.
      request.body = JSON.stringify(body);
      return encoder.encode(request.body);
    }
    return null;
  }

  function setState(text) {
    document.getElementById("signing-state").textContent = text;
  }

  async function signRequest(request) {
    const url = new URL(request.url, window.location.href);
    const api = url.pathname === "/api" || url.pathname.startsWith("/api/");
    if (secret === null || !api || url.origin !== window.location.origin) return request;
    const body = bodyBytes(request);
    if (body === null) {
      setState("This request's body cannot be signed here: it goes out unsigned.");
      return request;
    }
    const timestamp = String(Math.floor(Date.now() / 1000));
    const signature = await sign(secret, timestamp, request.method, requestTarget(url), body);
    const headers = request.headers || {};
    // Replace whatever the Authorize dialog put there, whatever its case.
    for (const name of Object.keys(headers)) {
      const lower = name.toLowerCase();
      if (lower === "x-timestamp" || lower === "x-hmac-signature") delete headers[name];
    }
    headers["X-Timestamp"] = timestamp;
    headers["X-HMAC-Signature"] = signature;
    request.headers = headers;
    return request;
  }

  const form = document.getElementById("signing");
  const input = document.getElementById("secret");
  if (!window.isSecureContext || !window.crypto || !crypto.subtle) {
    // WebCrypto exists only on https or localhost: sign with `python -m service sign` instead.
    input.disabled = true;
    form.querySelector("button[type=submit]").disabled = true;
    setState("Signing here needs https or localhost; use `python -m service sign` instead.");
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (input.value === "") return;
    secret = input.value;
    input.value = "";
    setState("Try it out signs /api/* requests with the pasted secret.");
  });
  document.getElementById("forget").addEventListener("click", () => {
    secret = null;
    input.value = "";
    setState("Requests are not signed.");
  });

  window.waSidecarDocs = { sign: (key, ts, method, path, body) =>
    sign(key, ts, method, path, encoder.encode(body || "")) };

  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    // Nothing from the query string configures the viewer, and nothing leaves this origin.
    queryConfigEnabled: false,
    validatorUrl: null,
    requestInterceptor: signRequest,
  });
})();
