// Starts Swagger UI on /docs (app/web/api_docs.py); a file, so the page needs no inline script.
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = window.SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    domNode: root,
    deepLinking: true,
    // The bearer token typed into "Authorize" lives in this page only, never in storage.
    persistAuthorization: false,
  });
});
