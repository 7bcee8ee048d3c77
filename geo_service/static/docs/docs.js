/* /docs: Swagger UI on the service's own copy. Signed in, the page carries the session's CSRF
 * token (<meta name="csrf-token">) and every unsafe call made from "Try it out" sends it, so a
 * signed-in operator can call the API from here as the console does; with an API key
 * (Authorize) no token is needed. */
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";
  var me = document.currentScript;
  window.ui = SwaggerUIBundle({
    url: me.getAttribute("data-openapi"),
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    requestInterceptor: function (req) {
      var method = (req.method || "GET").toUpperCase();
      if (csrf && ["GET", "HEAD", "OPTIONS"].indexOf(method) < 0) {
        req.headers["X-CSRF-Token"] = csrf;
      }
      return req;
    }
  });
}());
