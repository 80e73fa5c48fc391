// Starts Swagger UI on /api/docs (functions/api_docs.py). A file, not an inline script, so the
// page's Content-Security-Policy can forbid inline scripts.
"use strict";

window.ui = SwaggerUIBundle({
  // openapi.json next to this page: /api/openapi.json. Its servers entry is "/", so "Try it out"
  // calls this same host.
  url: new URL("openapi.json", document.baseURI).href,
  dom_id: "#swagger-ui",
  // No top bar: this page shows this API's document, not any URL typed in.
  layout: "BaseLayout",
  presets: [SwaggerUIBundle.presets.apis],
  deepLinking: true,
  displayRequestDuration: true,
  // Swagger UI would send the document to an outside validator for its badge.
  validatorUrl: null,
});
